/* The Vulkan context: instance, chosen device, queue, the one pipeline layout
 * every kernel shares, the pipeline cache and the staging path.
 *
 * Device choice: discrete > integrated > virtual > CPU (lavapipe), overridden
 * by a selector (`--device N|NAME` or QAT_DEVICE): N is the index printed by
 * `qat devices`, NAME a case-insensitive substring of the device name.
 * QAT_VK_VALIDATE=1 turns on VK_LAYER_KHRONOS_validation; every message it
 * prints is counted, and the tests fail on any. */
#ifndef QAT_CONTEXT_H
#define QAT_CONTEXT_H

#include <vulkan/vulkan.h>

#include "qat/common.h"

/* Every kernel sees the same descriptor set layout: QAT_MAX_BINDINGS storage
 * buffers, the last of which is the per-step scalars buffer, plus a 128-byte
 * push-constant block. One layout keeps pipelines and descriptor sets
 * interchangeable; unused bindings point at the scalars buffer. */
#define QAT_MAX_BINDINGS 8
#define QAT_SCALARS_BINDING (QAT_MAX_BINDINGS - 1)
/* Bindings QAT_TEXEL_BASE + b (b < QAT_TEXEL_BINDINGS) are uniform texel
 * buffers viewing the tensor at storage binding b, for kernels that read
 * vec4s through the texture path (faster on some drivers, lavapipe among
 * them): RGBA32F (samplerBuffer) for float tensors, RGBA32I
 * (isamplerBuffer) for int32 ones, RGBA32UI (usamplerBuffer) where a
 * dispatch reads raw words (packed codes, bytes). */
#define QAT_TEXEL_BASE QAT_MAX_BINDINGS
#define QAT_TEXEL_BINDINGS 5
#define QAT_PUSH_WORDS 32
/* Sub-allocations are aligned to this many bytes: a multiple of every
 * device's minStorageBufferOffsetAlignment we know of, and of vec4 loads. */
#define QAT_BUFFER_ALIGN 256

typedef struct qat_device_info {
    int index;                     /* in vkEnumeratePhysicalDevices order */
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    const char *type_name;         /* "discrete", "integrated", "virtual", "cpu", "other" */
    VkPhysicalDeviceType type;
    uint32_t vendor_id, device_id;
    uint32_t api_version, driver_version;
    char driver_name[VK_MAX_DRIVER_NAME_SIZE];
    char driver_info[VK_MAX_DRIVER_INFO_SIZE];
    uint64_t device_local_bytes;   /* largest device-local heap */
} qat_device_info;

/* One device memory allocation bound to one buffer; tensors are ranges in it. */
typedef struct qat_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceSize size;
    VkDeviceSize allocated;        /* the driver's size of the allocation */
    void *mapped;                  /* non-NULL when host-visible */
} qat_buffer;

typedef struct qat_pipeline_entry qat_pipeline_entry;

typedef struct qat_ctx {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    bool validate;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memory_props;
    qat_device_info info;
    VkCommandPool command_pool;
    VkCommandBuffer oneshot;       /* for uploads, readbacks, tests */
    VkFence fence;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipeline_layout;
    qat_pipeline_entry *pipelines; /* linked cache keyed by kernel + spec constants */
    qat_buffer staging;            /* host-visible; grows on demand */
    qat_buffer dummy;              /* bound to unused descriptor slots */
    VkBufferView dummy_view;       /* likewise, for texel bindings */
    VkBufferView dummy_view_uint;  /* likewise, for texel bindings read as uvec4 */
    uint64_t device_bytes;         /* device memory currently allocated */
    uint64_t peak_device_bytes;
    volatile uint32_t validation_messages;
} qat_ctx;

/* Lists the devices without creating a logical device. *chosen is the index
 * the selector (or the preference order) picks, or -1 with an error. */
qat_status qat_devices_list(const char *selector, qat_device_info **devices, int *count, int *chosen);

/* selector: NULL means the QAT_DEVICE environment variable, then preference. */
qat_status qat_ctx_init(const char *selector, qat_ctx **out);
void qat_ctx_free(qat_ctx *ctx);

/* True when the chosen device is a CPU implementation (lavapipe, SwiftShader):
 * kernels pick their tile shapes by this. */
bool qat_ctx_is_cpu(const qat_ctx *ctx);

/* Buffers. host_visible asks for mappable memory (staging, per-step inputs);
 * otherwise device-local is preferred. */
qat_status qat_buffer_create(qat_ctx *ctx, VkDeviceSize size, bool host_visible, qat_buffer *out);
void qat_buffer_destroy(qat_ctx *ctx, qat_buffer *buf);

/* The staging path: synchronous copies between host memory and a buffer range,
 * through ctx->staging and a one-shot command buffer. */
qat_status qat_buffer_upload(qat_ctx *ctx, const qat_buffer *dst, VkDeviceSize offset, const void *src, size_t size);
qat_status qat_buffer_download(qat_ctx *ctx, const qat_buffer *src, VkDeviceSize offset, void *dst, size_t size);

/* A texel view of a buffer range (for QAT_TEXEL_BASE bindings) in a
 * four-component 32-bit format (VK_FORMAT_R32G32B32A32_SFLOAT, _SINT or
 * _UINT). */
qat_status qat_texel_view_create(qat_ctx *ctx, const qat_buffer *buf, VkDeviceSize offset, VkDeviceSize bytes,
                                 VkFormat format, VkBufferView *out);

/* Submits a command buffer and waits for it. */
qat_status qat_ctx_submit_wait(qat_ctx *ctx, VkCommandBuffer cmd);

/* Formats a VkResult with the call that produced it into the error message. */
qat_status qat_vk_error(VkResult result, const char *what);
const char *qat_vk_result_name(VkResult result);

#endif
