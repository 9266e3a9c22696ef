/* Every differentiable op, family by family. Tests walk this list to check
 * each op's gradient against finite differences, so an op that records a node
 * without a table entry is caught (mimic_op_name is the only way in). */
#include "graph.h"

/* Each family's table lives in its own file next to the forward code. */
extern const mimic_opdef mimic_ops_elementwise[];
extern const mimic_opdef mimic_ops_reduce[], mimic_ops_linalg[];
extern const mimic_opdef mimic_ops_views[], mimic_ops_copy[], mimic_ops_index[], mimic_ops_sort[];
extern const mimic_opdef mimic_ops_conv[];
extern const mimic_opdef mimic_ops_rnn[];

static const mimic_opdef *const families[] = {
    mimic_ops_elementwise,
    mimic_ops_reduce, mimic_ops_linalg,
    mimic_ops_views, mimic_ops_copy, mimic_ops_index, mimic_ops_sort,
    mimic_ops_conv,
    mimic_ops_rnn,
};

const char *mimic_op_name(int i)
{
    for (size_t f = 0; f < MIMIC_COUNT_OF(families); f++)
        for (const mimic_opdef *d = families[f]; d->name; d++)
            if (i-- == 0)
                return d->name;
    return NULL;
}
