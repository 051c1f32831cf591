/* Small helpers shared by the ops/<op>_vk.c files. */
#ifndef QAT_OP_UTIL_H
#define QAT_OP_UTIL_H

#include <string.h>

#include "qat/graph.h"

static inline float qat_u32_as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t qat_float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A 1-d dispatch of `local` invocations per group over n items (kernels
 * loop when the group count is capped). */
static inline void qat_dispatch_1d(const qat_graph *g, qat_dispatch *d, qat_kernel kernel, uint32_t mode,
                                   uint64_t n, uint32_t local)
{
    d->kernel = kernel;
    d->spec.local[0] = local;
    d->spec.local[1] = 1;
    d->spec.local[2] = 1;
    d->spec.values[0] = mode;
    d->groups[0] = qat_groups_for(g, n, local);
    d->groups[1] = d->groups[2] = 1;
}

/* Binds inputs in order from binding 0 and the output at `out_binding`. */
static inline void qat_bind(qat_dispatch *d, const qat_node *n, int out_binding)
{
    for (int i = 0; i < n->nin; i++) d->binding[i] = n->in[i];
    if (out_binding >= 0) {
        d->binding[out_binding] = n->out;
        d->writes[out_binding] = true;
    }
}

static inline const qat_tensor *qat_in(const qat_graph *g, const qat_node *n, int i)
{
    return qat_tensor_cget(g, n->in[i]);
}

/* A new activation shaped like tensor `like`. */
static inline int qat_act_like(qat_graph *g, int like, const char *name)
{
    const qat_tensor *t = qat_tensor_get(g, like);
    int64_t shape[QAT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    return qat_act_new(g, name, t->dtype, t->ndim, shape);
}

/* Adds a node of `op` with inputs `in` producing a new tensor shaped like `like`. */
static inline int qat_unary_like(qat_graph *g, qat_op op, const int *in, int nin, int like)
{
    int out = qat_act_like(g, like, NULL);
    qat_node_add(g, op, in, nin, out);
    return out;
}

#endif
