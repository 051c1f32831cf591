/* CPU reference step of the mlp (784-256-256-10, ReLU): three linear layers
 * on sgemm, softmax cross-entropy, backward, AdamW. */
#include <stdlib.h>

#include "bench/cpu_ref.h"

enum { IN = 784, HIDDEN = 256, CLASSES = 10 };
/* Parameter order of qat's mlp: fc1.weight, fc1.bias, fc2..., fc3... */
enum { W1, B1, W2, B2, W3, B3, NPARAMS };

struct cpu_mlp {
    int batch;
    cpu_params p;
    float *h1, *h2, *logits;    /* forward activations (after ReLU) */
    float *dlogits, *dh2, *dh1; /* their gradients */
};

cpu_mlp *cpu_mlp_create(int batch, float *const *init)
{
    static const int64_t numel[NPARAMS] = { HIDDEN * IN, HIDDEN, HIDDEN * HIDDEN, HIDDEN, CLASSES * HIDDEN, CLASSES };
    cpu_mlp *m = qat_xcalloc(1, sizeof *m);
    m->batch = batch;
    cpu_params_init(&m->p, NPARAMS, numel, init);
    size_t b = (size_t)batch;
    m->h1 = qat_xmalloc(b * HIDDEN * sizeof(float));
    m->h2 = qat_xmalloc(b * HIDDEN * sizeof(float));
    m->logits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dlogits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dh2 = qat_xmalloc(b * HIDDEN * sizeof(float));
    m->dh1 = qat_xmalloc(b * HIDDEN * sizeof(float));
    return m;
}

float cpu_mlp_step(cpu_mlp *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step)
{
    int b = m->batch;
    float *const *v = m->p.value, *const *g = m->p.grad;
    cpu_linear(x, v[W1], v[B1], m->h1, b, IN, HIDDEN, true);
    cpu_linear(m->h1, v[W2], v[B2], m->h2, b, HIDDEN, HIDDEN, true);
    cpu_linear(m->h2, v[W3], v[B3], m->logits, b, HIDDEN, CLASSES, false);
    float loss = cpu_softmax_ce(m->logits, labels, m->dlogits, b, CLASSES);

    cpu_linear_back(m->dlogits, m->h2, v[W3], g[W3], g[B3], m->dh2, b, HIDDEN, CLASSES);
    cpu_relu_back(m->dh2, m->h2, (size_t)b * HIDDEN);
    cpu_linear_back(m->dh2, m->h1, v[W2], g[W2], g[B2], m->dh1, b, HIDDEN, HIDDEN);
    cpu_relu_back(m->dh1, m->h1, (size_t)b * HIDDEN);
    cpu_linear_back(m->dh1, x, v[W1], g[W1], g[B1], NULL, b, IN, HIDDEN); /* the input needs no gradient */
    cpu_adamw(&m->p, c, step);
    return loss;
}

void cpu_mlp_free(cpu_mlp *m)
{
    if (!m) return;
    cpu_params_free(&m->p);
    free(m->h1);
    free(m->h2);
    free(m->logits);
    free(m->dlogits);
    free(m->dh2);
    free(m->dh1);
    free(m);
}
