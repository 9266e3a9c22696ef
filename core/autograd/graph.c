/* Recording and the backward engine. Nodes are reference counted: a result's
 * meta holds its node, a node holds its inputs, so the graph lives exactly as
 * long as some tensor computed from it. */
#include "graph.h"
#include "mimic/ops.h"

#include <stdatomic.h>
#include <string.h>

/* Grad mode, per thread like the last error. Stored inverted so that the
 * zero-initialised default means "on". */
static _Thread_local bool grad_off;
/* Backward passes get distinct ids so visited-marks from an earlier pass never
 * look current; atomic because passes may run on several threads. */
static _Atomic uint64_t pass_counter;

bool mimic_grad_enabled(void) { return !grad_off; }

bool mimic_set_grad_enabled(bool on)
{
    bool prev = !grad_off;
    grad_off = !on;
    return prev;
}

static mimic_meta *meta_get(mimic_tensor *t)
{
    if (!t->autograd)
        t->autograd = mimic_calloc(1, sizeof(mimic_meta));
    return t->autograd;
}

bool mimic_requires_grad(const mimic_tensor *t)
{
    const mimic_meta *m = t->autograd;
    return m && m->requires_grad;
}

bool mimic_is_leaf(const mimic_tensor *t)
{
    const mimic_meta *m = t->autograd;
    return !m || !m->node;
}

const char *mimic_grad_fn_name(const mimic_tensor *t)
{
    const mimic_meta *m = t->autograd;
    return m && m->node ? m->node->name : NULL;
}

int mimic_set_requires_grad(mimic_tensor *t, bool on)
{
    if (on && t->dtype != MIMIC_F32 && t->dtype != MIMIC_F64)
        return mimic_error(MIMIC_EDTYPE, "requires_grad: only float32/float64 tensors can have gradients (got %s)",
                           mimic_dtype_name(t->dtype));
    if (!mimic_is_leaf(t))
        return mimic_error(MIMIC_ESTATE, "requires_grad: the tensor is the result of '%s', so its gradient "
                           "requirement follows from its inputs; call detach() for a new leaf",
                           mimic_grad_fn_name(t));
    if (!on && !t->autograd)
        return MIMIC_OK;
    mimic_meta *m = meta_get(t);
    if (!m)
        return MIMIC_ENOMEM;
    m->requires_grad = on;
    return MIMIC_OK;
}

mimic_tensor *mimic_grad(const mimic_tensor *t)
{
    const mimic_meta *m = t->autograd;
    return m ? m->grad : NULL;
}

int mimic_set_grad(mimic_tensor *t, mimic_tensor *g)
{
    if (g && (g->ndim != t->ndim || memcmp(g->shape, t->shape, (size_t)t->ndim * sizeof *t->shape))) {
        char a[96], b[96];
        return mimic_error(MIMIC_ESHAPE, "set_grad: gradient of shape %s for a tensor of shape %s",
                           mimic_shape_str(g->ndim, g->shape, a, sizeof a), mimic_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    if (!g && !t->autograd)
        return MIMIC_OK;
    mimic_meta *m = meta_get(t);
    if (!m)
        return MIMIC_ENOMEM;
    mimic_tensor_retain(g);
    mimic_tensor_free(m->grad);
    m->grad = g;
    return MIMIC_OK;
}

int mimic_zero_grad(mimic_tensor *t) { return mimic_set_grad(t, NULL); }

uint64_t mimic_version(const mimic_tensor *t)
{
    return atomic_load_explicit((_Atomic uint64_t *)&t->storage->version, memory_order_relaxed);
}

mimic_tensor *mimic_detach(mimic_tensor *t)
{
    return mimic_tensor_new_view(t, t->ndim, t->shape, t->stride, t->offset);
}

/* --- recording ------------------------------------------------------------------ */
static void node_release(mimic_node *n)
{
    if (!n || atomic_fetch_sub_explicit((_Atomic int *)&n->refcount, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < n->nin; i++)
        mimic_tensor_free(n->in[i]);
    mimic_tensor_free(n->saved);
    mimic_tensor_free(n->gacc);
    mimic_free(n->in_version);
    mimic_free(n);
}

void mimic_ag_free_meta(mimic_meta *m)
{
    mimic_tensor_free(m->grad);
    node_release(m->node);
    mimic_free(m);
}

bool mimic_ag_wanted(int nin, const mimic_tensor *const *in)
{
    if (grad_off)
        return false;
    for (int i = 0; i < nin; i++)
        if (in[i] && mimic_requires_grad(in[i]))
            return true;
    return false;
}

mimic_node *mimic_ag_record(mimic_tensor *r, const char *name, mimic_backward_fn bw, int nin,
                            const mimic_tensor *const *in)
{
    mimic_node *n = mimic_calloc(1, sizeof *n + (size_t)nin * sizeof n->in[0]);
    uint64_t *ver = n ? mimic_calloc((size_t)nin ? (size_t)nin : 1, sizeof *ver) : NULL;
    mimic_meta *m = ver ? meta_get(r) : NULL;
    if (!m) {
        mimic_free(ver);
        mimic_free(n);
        return NULL;
    }
    n->name = name;
    n->backward = bw;
    n->refcount = 1;
    n->nin = nin;
    n->in_version = ver;
    n->reads = UINT32_MAX;
    n->out_ndim = r->ndim;
    memcpy(n->out_shape, r->shape, sizeof n->out_shape);
    n->out_dtype = r->dtype;
    for (int i = 0; i < nin; i++) {
        n->in[i] = (mimic_tensor *)in[i]; /* retained: refcounts change behind const */
        if (in[i]) {
            mimic_tensor_retain(n->in[i]);
            ver[i] = mimic_version(in[i]);
        }
    }
    m->node = n;
    m->requires_grad = true;
    return n;
}

int mimic_ag_save(mimic_node *n, const mimic_tensor *t)
{
    mimic_tensor *d = mimic_detach((mimic_tensor *)t);
    if (!d)
        return MIMIC_ENOMEM;
    mimic_tensor_free(n->saved);
    n->saved = d;
    n->saved_version = mimic_version(t);
    return MIMIC_OK;
}

bool mimic_node_needs(const mimic_node *n, int i)
{
    return i < n->nin && n->in[i] && mimic_requires_grad(n->in[i]);
}

int mimic_ag_inplace(const char *fn, mimic_tensor *t)
{
    if (!grad_off && mimic_requires_grad(t))
        return mimic_error(MIMIC_ESTATE, "%s: in-place changes of a tensor that requires grad are not recorded; "
                           "use the out-of-place form, or do it with grad mode off (no_grad)", fn);
    atomic_fetch_add_explicit((_Atomic uint64_t *)&t->storage->version, 1, memory_order_relaxed);
    return MIMIC_OK;
}

int mimic_ag_out(const char *fn, mimic_tensor *out, int nin, const mimic_tensor *const *in)
{
    if (mimic_ag_wanted(nin, in))
        return mimic_error(MIMIC_ESTATE, "%s: writing into a given output is not recorded for autograd, but an "
                           "input requires grad; use the allocating form, or do it with grad mode off", fn);
    return mimic_ag_inplace(fn, out);
}

/* --- the backward engine ------------------------------------------------------------- */
static mimic_node *node_of(const mimic_tensor *t)
{
    const mimic_meta *m = t ? t->autograd : NULL;
    return m && m->requires_grad ? m->node : NULL;
}

/* *slot += g, taking ownership of g. Under create_graph the add is recorded. */
static int accumulate(mimic_tensor **slot, mimic_tensor *g)
{
    if (!*slot) {
        *slot = g;
        return MIMIC_OK;
    }
    mimic_tensor *s = mimic_binary(MIMIC_ADD, *slot, g);
    mimic_tensor_free(g);
    if (!s)
        return mimic_errcode();
    mimic_tensor_free(*slot);
    *slot = s;
    return MIMIC_OK;
}

/* A leaf's .grad += g (g owned). Without create_graph the stored gradient is a
 * private contiguous copy, so later accumulation can add into it in place. */
static int accumulate_leaf(mimic_tensor *leaf, mimic_tensor *g, bool create_graph)
{
    mimic_meta *m = leaf->autograd;
    if (g->dtype != leaf->dtype) {
        mimic_tensor *c = mimic_to_dtype(g, leaf->dtype);
        mimic_tensor_free(g);
        if (!(g = c))
            return mimic_errcode();
    }
    if (!m->grad) {
        bool private = g->refcount == 1 && g->storage->refcount == 1 && mimic_is_contiguous(g) && !g->autograd;
        if (!private && !create_graph) {
            mimic_tensor *c = mimic_clone(g);
            mimic_tensor_free(g);
            if (!(g = c))
                return mimic_errcode();
        }
        m->grad = g;
        return MIMIC_OK;
    }
    if (create_graph || m->grad->autograd)
        return accumulate(&m->grad, g);
    int rc = mimic_binary_out(m->grad, MIMIC_ADD, m->grad, g);
    mimic_tensor_free(g);
    return rc;
}

static int check_versions(const mimic_node *n)
{
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] && (n->reads >> i & 1) && mimic_version(n->in[i]) != n->in_version[i])
            goto modified;
    if (n->saved && mimic_version(n->saved) != n->saved_version)
        goto modified;
    return MIMIC_OK;
modified:
    return mimic_error(MIMIC_ESTATE, "backward: a tensor that '%s' needs for its gradient was modified in place "
                       "after the op; compute with a copy (clone()) or modify it only after backward", n->name);
}

/* Nodes reachable from root, in post-order (every node after its inputs' nodes). */
static mimic_node **topo_order(mimic_node *root, int64_t *count)
{
    uint64_t pass = atomic_fetch_add(&pass_counter, 1) + 1;
    int64_t cap = 64, n = 0, depth = 0, scap = 64;
    mimic_node **order = mimic_malloc((size_t)cap * sizeof *order);
    struct frame { mimic_node *node; int next; } *stack = mimic_malloc((size_t)scap * sizeof *stack);
    if (!order || !stack)
        goto oom;
    root->mark = pass;
    stack[depth++] = (struct frame){root, 0};
    while (depth) {
        struct frame *f = &stack[depth - 1];
        if (f->next < f->node->nin) {
            mimic_node *c = node_of(f->node->in[f->next++]);
            if (!c || c->mark == pass)
                continue;
            c->mark = pass;
            if (depth == scap) {
                void *p = mimic_realloc(stack, (size_t)(scap *= 2) * sizeof *stack);
                if (!p)
                    goto oom;
                stack = p;
            }
            stack[depth++] = (struct frame){c, 0};
            continue;
        }
        if (n == cap) {
            void *p = mimic_realloc(order, (size_t)(cap *= 2) * sizeof *order);
            if (!p)
                goto oom;
            order = p;
        }
        order[n++] = f->node;
        depth--;
    }
    mimic_free(stack);
    *count = n;
    return order;
oom:
    mimic_free(stack);
    mimic_free(order);
    return NULL;
}

int mimic_backward(mimic_tensor *root, const mimic_tensor *grad_root, bool create_graph)
{
    if (!mimic_requires_grad(root))
        return mimic_error(MIMIC_ESTATE, "backward: the tensor does not require grad: nothing it was computed from "
                           "requires grad (mark the parameters with requires_grad first, and keep grad mode on)");
    mimic_tensor *g;
    if (grad_root) {
        if (grad_root->ndim != root->ndim ||
            memcmp(grad_root->shape, root->shape, (size_t)root->ndim * sizeof *root->shape)) {
            char a[96], b[96];
            return mimic_error(MIMIC_ESHAPE, "backward: gradient of shape %s for a result of shape %s",
                               mimic_shape_str(grad_root->ndim, grad_root->shape, a, sizeof a),
                               mimic_shape_str(root->ndim, root->shape, b, sizeof b));
        }
        bool prev = mimic_set_grad_enabled(create_graph); /* no history from grad_root unless asked */
        g = mimic_to_dtype(grad_root, root->dtype);
        mimic_set_grad_enabled(prev);
    } else {
        if (mimic_numel(root) != 1) {
            char a[96];
            return mimic_error(MIMIC_ESHAPE, "backward: the result has shape %s; without an explicit gradient it "
                               "must have one element (reduce it to a loss first, e.g. with mean())",
                               mimic_shape_str(root->ndim, root->shape, a, sizeof a));
        }
        g = mimic_ones(root->ndim, root->shape, root->dtype);
    }
    if (!g)
        return mimic_errcode();
    mimic_node *rn = node_of(root);
    if (!rn)
        return accumulate_leaf(root, g, create_graph);

    int64_t count;
    mimic_node **order = topo_order(rn, &count);
    if (!order) {
        mimic_tensor_free(g);
        return mimic_errcode();
    }
    bool prev = mimic_set_grad_enabled(create_graph);
    int rc = MIMIC_OK;
    rn->gacc = g;
    for (int64_t k = count - 1; k >= 0 && rc == MIMIC_OK; k--) {
        mimic_node *n = order[k];
        mimic_tensor *gout = n->gacc;
        n->gacc = NULL;
        if (!gout)
            continue; /* no gradient reached this node */
        if ((rc = check_versions(n))) {
            mimic_tensor_free(gout);
            break;
        }
        mimic_tensor *small[4] = {0}, **gin = n->nin <= 4 ? small : mimic_calloc((size_t)n->nin, sizeof *gin);
        if (!gin) {
            mimic_tensor_free(gout);
            rc = mimic_errcode();
            break;
        }
        rc = n->backward(n, gout, gin);
        mimic_tensor_free(gout);
        for (int i = 0; i < n->nin; i++) {
            if (!gin[i])
                continue;
            mimic_tensor *in = n->in[i];
            if (rc == MIMIC_OK && (in->ndim != gin[i]->ndim ||
                                   memcmp(in->shape, gin[i]->shape, (size_t)in->ndim * sizeof *in->shape))) {
                char a[96], b[96];
                rc = mimic_error(MIMIC_EINTERNAL, "backward of '%s': gradient %s for input %s (a bug: please report it)",
                                 n->name, mimic_shape_str(gin[i]->ndim, gin[i]->shape, a, sizeof a),
                                 mimic_shape_str(in->ndim, in->shape, b, sizeof b));
            }
            if (rc != MIMIC_OK) {
                mimic_tensor_free(gin[i]);
                continue;
            }
            mimic_node *c = node_of(in);
            if (c)
                rc = accumulate(&c->gacc, gin[i]);
            else if (mimic_requires_grad(in))
                rc = accumulate_leaf(in, gin[i], create_graph);
            else
                mimic_tensor_free(gin[i]); /* computed but not wanted */
        }
        if (gin != small)
            mimic_free(gin);
    }
    for (int64_t k = 0; k < count; k++) { /* after an error, drop what is left */
        mimic_tensor_free(order[k]->gacc);
        order[k]->gacc = NULL;
    }
    mimic_free(order);
    mimic_set_grad_enabled(prev);
    return rc;
}
