/* Internal (not installed): what the embedding layer shares with the model
 * file reader, so a contract reads the same in every message. */
#ifndef MIMIC_MODELFILE_INTERNAL_H
#define MIMIC_MODELFILE_INTERNAL_H

#include "mimic/modelfile.h"

/* "a [K] (3), b [1] (2)" into buf (cap bytes), ending in "..." if cut. */
void mimic_contract_list_vars(char *buf, size_t cap, const mimic_io_var *v, int n);

#endif
