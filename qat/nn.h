/* Models: the graphs of the networks qat trains, with PyTorch's parameter
 * names and layouts so checkpoints read anywhere.
 *   mlp: 784-256-256-10, ReLU; layers fc1, fc2, fc3.
 *   cnn: conv1 3x3 1->16 pad 1, ReLU, maxpool 2x2 -> conv2 3x3 16->32 pad 1,
 *        ReLU, maxpool 2x2 -> flatten 32*7*7 -> fc1 1568->128, ReLU -> fc2 128->10.
 *   gpt: a byte-level GPT-style decoder (docs/gpt.md): token and position
 *        embeddings wte / wpe, `layers` pre-LayerNorm blocks
 *        blocks.I.{ln1, attn.{q,k,v,proj}, ln2, mlp.{fc,proj}}, causal
 *        multi-head self-attention and a GELU MLP (4x width), then ln_f and
 *        the output head.
 *
 * A model is described by a qat_model_desc (its parameters in checkpoint
 * order and its quantizable layers), computed from a qat_model_config, so
 * everything downstream -- checkpoints, quantization, bit maps, reports --
 * walks the description instead of knowing the architecture. */
#ifndef QAT_NN_H
#define QAT_NN_H

#include "ops/ops.h"
#include "ops/q4_format.h"
#include "qat/graph.h"

typedef enum qat_model_kind { QAT_MODEL_MLP, QAT_MODEL_CNN, QAT_MODEL_GPT, QAT_MODEL_KIND_COUNT } qat_model_kind;

typedef struct qat_gpt_config {
    int layers;    /* transformer blocks */
    int width;     /* embedding width C */
    int heads;     /* attention heads; width % heads == 0 */
    int context;   /* positions T */
    int vocab;     /* 256: bytes */
} qat_gpt_config;

/* 4 blocks, width 128, 4 heads, context 128: trains in about ten minutes on
 * two CPU cores (README). */
#define QAT_GPT_DEFAULT_CONFIG ((qat_gpt_config){ 4, 128, 4, 128, 256 })

typedef struct qat_model_config {
    qat_model_kind kind;
    qat_gpt_config gpt;    /* QAT_MODEL_GPT only */
} qat_model_config;

/* Limits of one description: the gpt has 16 parameters and 6 layers per
 * block plus 6 and 1 more, so up to 15 blocks fit. */
#define QAT_MODEL_MAX_PARAMS 256
#define QAT_MODEL_MAX_LAYERS 96
#define QAT_GPT_MAX_LAYERS 15

typedef enum qat_param_init {
    QAT_INIT_FAN_IN,   /* uniform in +-1/sqrt(fan_in of the layer), PyTorch's nn.Linear / nn.Conv2d */
    QAT_INIT_NORMAL,   /* normal(0, std), GPT-2's */
    QAT_INIT_ONES,
    QAT_INIT_ZEROS,
} qat_param_init;

typedef struct qat_param_info {
    char name[64];
    int ndim;
    int64_t shape[4];
    int64_t numel;
    qat_param_init init;
    float init_arg;        /* FAN_IN: the fan-in; NORMAL: the standard deviation */
    int layer;             /* the layer whose weight or bias it is, or -1 */
} qat_param_info;

/* A layer with a weight (linear or conv), as quantization sees it: the
 * weight viewed as rows (output channels) x cols (everything else). */
typedef struct qat_layer_info {
    char name[56];         /* "fc1", "blocks.0.attn.q": its tensors are NAME.weight, NAME.bias */
    bool conv;             /* 3x3 conv, stride 1, padding 1 */
    int64_t rows, cols;
    int64_t in_channels, in_height, in_width; /* conv: the input image */
    int64_t positions;     /* input rows per sample: 1, or the gpt's context */
    bool input_nonnegative; /* its input comes out of a ReLU (PACT applies) */
    int weight, bias;      /* parameter indices */
} qat_layer_info;

typedef struct qat_model_desc {
    qat_model_config config;
    int nparams;
    qat_param_info params[QAT_MODEL_MAX_PARAMS];
    int nlayers;
    qat_layer_info layers[QAT_MODEL_MAX_LAYERS];
    int64_t param_count;   /* scalars */
} qat_model_desc;

/* Fills the description of a configuration; fails (QAT_ERR_INVALID, naming
 * the field) on gpt dimensions out of range. mlp and cnn have none. */
qat_status qat_model_desc_init(qat_model_desc *d, const qat_model_config *config);
/* The description of a kind at its default configuration (cannot fail). */
void qat_model_desc_default(qat_model_desc *d, qat_model_kind kind);

/* Elements of the layer's input for a batch of `batch` samples. */
int64_t qat_layer_input_numel(const qat_layer_info *info, int batch);
/* The layer index of a name, or -1. */
int qat_model_layer_find(const qat_model_desc *d, const char *name);
/* The parameter index of a name, or -1. */
int qat_model_param_find(const qat_model_desc *d, const char *name);
/* "fc1, fc2, fc3" (truncated to fit): for messages. */
void qat_model_layer_names(const qat_model_desc *d, char *out, size_t size);

/* Per-layer fake quantization inserted by qat_model_build_quant. A scale /
 * zero point pair becomes two parameters NAME.input_scale /
 * NAME.input_zero_point (or weight_...), written by the caller after
 * compiling; the scale trains when `trainable_scale`. */
typedef struct qat_model_fq {
    bool enabled;
    qat_fq_params params;
    bool trainable_scale;
    /* A code range per scale element (a weight whose rows have their own
     * widths): one more parameter, NAME.weight_qmax, that the caller writes
     * like the zero point (qat_fake_quant_ranged). */
    bool ranged;
} qat_model_fq;

typedef struct qat_model_quant {
    qat_model_fq input[QAT_MODEL_MAX_LAYERS];   /* on the layer's input */
    qat_model_fq weight[QAT_MODEL_MAX_LAYERS];  /* on its weight */
    /* Mark each layer's input (as the layer consumes it, after its fake
     * quantization) as an output, so calibration can read it. */
    bool expose_inputs;
} qat_model_quant;

/* LoRA adapters (Hu et al. 2021) on chosen layers, as PEFT defines them:
 * y = base(x) + (alpha / rank) * dropout(x) A^T B^T with A (rank, in) and
 * B (out, rank), parameters NAME.lora_A.weight and NAME.lora_B.weight. The
 * model's own parameters are frozen (qat_model_build_opts.trainable false)
 * while gradients flow through them to the adapters of earlier layers. */
typedef struct qat_model_lora {
    bool layer[QAT_MODEL_MAX_LAYERS];  /* adapters on these layers */
    int rank;
    float alpha;
    float dropout;                     /* on the adapters' input, [0, 1) */
    uint64_t seed;                     /* of the dropout masks */
    /* QLoRA: the adapted layers' weights exist on the device only as 4-bit
     * codes (qat_matmul_q4; their tensors are made by qat_q4_weight_add and
     * filled by the caller), not as FP32 parameters (m->params[w] is -1). */
    bool q4_base;
    qat_q4_type q4_type;
    bool double_quant;
} qat_model_lora;

typedef struct qat_model_build_opts {
    bool trainable;                    /* the model's own parameters */
    const qat_model_quant *quant;      /* fake quantization, or NULL */
    const qat_model_lora *lora;        /* adapters, or NULL */
} qat_model_build_opts;

typedef struct qat_model_layer {
    int weight, bias;      /* parameters (weight -1 for a 4-bit base) */
    int lora_a, lora_b;    /* adapter parameters, or -1 */
    bool q4;               /* the weight is the 4-bit q4_weight */
    qat_q4_weight_tensors q4_weight;
    int input;             /* what the layer consumes (after input quantization) */
    int input_raw;         /* the input before quantization */
    int in_scale, in_zero_point;  /* -1 when not quantized */
    int w_scale, w_zero_point;
    int w_qmax;            /* -1 unless the weight's quantizer is ranged */
} qat_model_layer;

typedef struct qat_model {
    const qat_model_desc *desc;  /* not owned; outlives the model */
    const qat_model_lora *lora;  /* likewise, or NULL */
    qat_model_kind kind;
    int batch;
    /* Inputs: mlp (batch, 784) F32, cnn (batch, 1, 28, 28) F32, gpt
     * (batch, context) I32 bytes. */
    int x;
    int labels;            /* input int32: (batch) classes, or (batch * context) next bytes */
    int logits;            /* (batch, 10) or (batch * context, vocab), an output */
    int loss;              /* scalar mean cross-entropy, an output */
    int nparams;
    int params[QAT_MODEL_MAX_PARAMS]; /* tensor ids, in the description's order */
    int64_t param_count;   /* scalars */
    int nlayers;
    qat_model_layer layers[QAT_MODEL_MAX_LAYERS];
} qat_model;

const char *qat_model_name(qat_model_kind kind);
/* Parses "mlp" / "cnn" / "gpt"; false if unknown. */
bool qat_model_parse(const char *name, qat_model_kind *out);

/* Builds the forward graph and the loss. */
void qat_model_build(qat_graph *g, const qat_model_desc *d, int batch, bool trainable, qat_model *out);
/* The same with fake quantization where q says (NULL: none). */
void qat_model_build_quant(qat_graph *g, const qat_model_desc *d, int batch, bool trainable,
                           const qat_model_quant *q, qat_model *out);
/* The same with every option. */
void qat_model_build_ex(qat_graph *g, const qat_model_desc *d, int batch, const qat_model_build_opts *o,
                        qat_model *out);
/* Initial adapter values: A uniform in +-1/sqrt(in) (PEFT's Kaiming-uniform
 * with a = sqrt(5)), B zeros, so training starts from the base model. Layer
 * l's A draws from stream QAT_RNG_STREAM_LORA + l of `seed`. */
enum { QAT_RNG_STREAM_LORA = 1 << 22 };
qat_status qat_model_init_lora(qat_graph *g, const qat_model *m, uint64_t seed);

/* Initial values from a counter-based RNG: parameter i draws from stream i
 * of `seed`, so the values do not depend on the device. mlp and cnn use
 * PyTorch's default initialisation of nn.Linear and nn.Conv2d (weights and
 * biases uniform in +-1/sqrt(fan_in)); gpt uses GPT-2's (normal(0, 0.02)
 * weights and embeddings, the residual projections scaled by
 * 1/sqrt(2 layers), zero biases, LayerNorm ones and zeros). Fills host
 * arrays (one per parameter of the description, numel floats). */
void qat_model_init_values(const qat_model_desc *d, uint64_t seed, float **values);
qat_status qat_model_init_params(qat_graph *g, const qat_model *m, uint64_t seed);

#endif
