/* The graph: tensors and the nodes that compute them, built once by op
 * builders (ops/<op>_vk.c), extended with gradient nodes by
 * qat_graph_backward() and optimizer nodes by qat_graph_add_optimizer(), then
 * compiled (memory, pipelines, descriptor sets) and recorded into command
 * buffers that are replayed every step (qat_seq).
 *
 * Tensors and nodes are referred to by integer ids so builders stay cheap and
 * the arrays can grow. Shapes are static: a graph is built for one batch size. */
#ifndef QAT_GRAPH_H
#define QAT_GRAPH_H

#include <stdio.h>

#include "ops/ops.h"
#include "qat/context.h"
#include "qat/kernels.h"

#define QAT_MAX_DIMS 4
#define QAT_NODE_MAX_IN 6

typedef enum qat_dtype { QAT_F32, QAT_I32, QAT_U8 } qat_dtype;

typedef enum qat_storage {
    QAT_STORE_ACT,    /* device arena: activations, gradients of activations */
    QAT_STORE_PARAM,  /* flat parameter buffer; trainable ones first */
    QAT_STORE_GRAD,   /* flat gradient buffer, same offsets as the parameter */
    QAT_STORE_OPT,    /* optimizer state (momentum, Adam moments) */
    QAT_STORE_INPUT,  /* copied from a host slot at the start of every run */
    QAT_STORE_CONST,  /* uploaded once when the graph is compiled */
    QAT_STORE_VIEW,   /* aliases another tensor's memory (reshape) */
} qat_storage;

/* Buffers of a compiled graph. */
enum { QAT_BUF_PARAM, QAT_BUF_GRAD, QAT_BUF_OPT, QAT_BUF_ACT, QAT_BUF_COUNT };

/* Per-step scalars: one small device buffer, bound at QAT_SCALARS_BINDING in
 * every dispatch and rewritten from the host before each run, so recorded
 * command buffers never need re-recording when the learning rate changes. */
enum {
    QAT_SCALAR_LR,             /* learning rate of this step */
    QAT_SCALAR_ADAM_STEP_SIZE, /* lr / (1 - beta1^t), computed in double as PyTorch does */
    QAT_SCALAR_ADAM_BC2_SQRT,  /* sqrt(1 - beta2^t), likewise */
    QAT_SCALAR_DECAY_FACTOR,   /* AdamW's 1 - lr * weight_decay, likewise */
    QAT_SCALAR_TRAINING,       /* 1 while training (dropout active), 0 when evaluating */
    QAT_SCALAR_STEP_INDEX,     /* the step number as uint32 bits: dropout's RNG stream */
    QAT_SCALAR_COUNT = 16
};

typedef struct qat_tensor {
    char name[64];
    qat_dtype dtype;
    int ndim;
    int64_t shape[QAT_MAX_DIMS];
    int64_t numel;
    qat_storage storage;
    int base;              /* VIEW: the aliased tensor */
    bool requires_grad;    /* gradients flow to or through it */
    int grad;              /* tensor id of d(loss)/d(this), or -1 */
    int grad_of;           /* for gradients: the tensor it differentiates, or -1 */
    int producer;          /* node id, or -1 */
    bool output;           /* copied to its host slot after a run */
    bool flat;             /* spans the whole trainable parameter (or gradient) region */
    const void *init_data; /* CONST: data uploaded at compile (not owned) */
    /* Assigned by qat_graph_compile(). */
    int buffer;            /* QAT_BUF_* */
    uint64_t offset, bytes;
    uint64_t host_offset;  /* INPUT/output tensors: slot in the host io buffer */
} qat_tensor;

typedef struct qat_node {
    qat_op op;
    int nin;
    int in[QAT_NODE_MAX_IN];
    int out;               /* tensor id; -1 for in-place nodes (optimizers) */
    int32_t iarg[8];       /* op-specific integer arguments */
    float farg[8];         /* op-specific float arguments */
    bool backward;         /* appended by qat_graph_backward() */
} qat_node;

/* How one node becomes one dispatch (filled by the op's encode function). */
typedef struct qat_dispatch {
    qat_kernel kernel;
    qat_spec spec;
    uint32_t push[QAT_PUSH_WORDS];
    uint32_t groups[3];
    int binding[QAT_SCALARS_BINDING]; /* tensor ids, -1 unused */
    bool writes[QAT_SCALARS_BINDING]; /* the dispatch writes this binding */
    bool texel[QAT_TEXEL_BINDINGS];   /* also view binding b as vec4 (ivec4 for int32) texels at QAT_TEXEL_BASE + b */
    bool texel_uint[QAT_TEXEL_BINDINGS]; /* ... as uvec4 texels instead (raw words of any dtype); also
                                          * picks the uint dummy when binding b is unused */
} qat_dispatch;

typedef struct qat_graph qat_graph;
typedef struct qat_seq qat_seq;

qat_graph *qat_graph_create(qat_ctx *ctx);
void qat_graph_free(qat_graph *g);
qat_ctx *qat_graph_ctx(const qat_graph *g);

/* Tensor creation. Names are for checkpoints and messages. */
int qat_tensor_new(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape,
                   qat_storage storage);
int qat_input(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape);
int qat_param(qat_graph *g, const char *name, int ndim, const int64_t *shape, bool trainable);
int qat_const(qat_graph *g, const char *name, int ndim, const int64_t *shape, const float *data);
/* The tensor an op produces; its shape comes from the op's shape rule. */
int qat_node_add(qat_graph *g, qat_op op, const int *in, int nin, int out);
int qat_act_new(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape);

qat_tensor *qat_tensor_get(qat_graph *g, int id);
const qat_tensor *qat_tensor_cget(const qat_graph *g, int id);
qat_node *qat_node_get(qat_graph *g, int id);
int qat_graph_tensor_count(const qat_graph *g);
int qat_graph_node_count(const qat_graph *g);
int qat_graph_scalars(const qat_graph *g);
/* Looks a tensor up by name (-1 if none). */
int qat_graph_find(const qat_graph *g, const char *name);
/* Marks a tensor to be copied to its host slot after every run. */
void qat_graph_mark_output(qat_graph *g, int t);

/* Appends the gradient nodes of d(loss)/d(every tensor that requires grad);
 * loss must be a scalar. Returns the first backward node id. */
int qat_graph_backward(qat_graph *g, int loss);

/* Compile: plan memory, create pipelines and descriptor sets, zero the
 * buffers, upload constants. No nodes may be added afterwards. */
qat_status qat_graph_compile(qat_graph *g);

/* Host access (compiled graphs). Inputs: write into the slot before a run.
 * Outputs: read after a run. Synchronous read/write through the staging path
 * of parameters, gradients, inputs, outputs and results no node reads;
 * other activations share arena memory planned by liveness, so after a run
 * they may hold a later tensor's values. */
void *qat_graph_input_slot(qat_graph *g, int t);
const void *qat_graph_output_slot(qat_graph *g, int t);
qat_status qat_tensor_write(qat_graph *g, int t, const void *data);
qat_status qat_tensor_read(qat_graph *g, int t, void *data);
float *qat_graph_scalar_slot(qat_graph *g);
uint64_t qat_graph_device_bytes(const qat_graph *g);
/* Training (dropout drawn from the step's RNG stream) or evaluation
 * (dropout is the identity), written into the scalars before a run. */
void qat_graph_set_phase(qat_graph *g, bool training, uint32_t step);

/* The trainable parameters in flat-buffer order and the span the optimizer
 * updates (in floats, padding included). */
int qat_graph_param_count(const qat_graph *g);
int qat_graph_param_id(const qat_graph *g, int i);

/* A recorded sequence of nodes [begin, end): recorded once, run many times.
 * Each run copies every INPUT tensor from its host slot, dispatches the
 * nodes, and copies the outputs produced in range to their host slots. */
qat_status qat_seq_create(qat_graph *g, int begin, int end, qat_seq **out);
qat_status qat_seq_run(qat_seq *s);
/* Dispatches and barriers in the recording (for tests and benchmarks). */
int qat_seq_dispatch_count(const qat_seq *s);
int qat_seq_barrier_count(const qat_seq *s);
void qat_seq_free(qat_seq *s);
/* With QAT_PROFILE=1 in the environment when the sequence was created, each
 * dispatch is timed with GPU timestamps; this prints the per-node means. */
void qat_seq_profile_print(const qat_seq *s, FILE *out);

/* Helpers for op implementations. */
int64_t qat_shape_numel(int ndim, const int64_t *shape);
size_t qat_dtype_size(qat_dtype dtype);
/* Group count for n invocations of local size `local`, capped so the x
 * dimension stays within the device limit; shaders loop over the rest. */
uint32_t qat_groups_for(const qat_graph *g, uint64_t n, uint32_t local);

#endif
