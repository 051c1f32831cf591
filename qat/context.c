#include "qat/context.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/kernels.h"

const char *qat_vk_result_name(VkResult r)
{
    switch (r) {
#define NAME(x) case x: return #x;
        NAME(VK_SUCCESS) NAME(VK_NOT_READY) NAME(VK_TIMEOUT) NAME(VK_INCOMPLETE)
        NAME(VK_ERROR_OUT_OF_HOST_MEMORY) NAME(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        NAME(VK_ERROR_INITIALIZATION_FAILED) NAME(VK_ERROR_DEVICE_LOST)
        NAME(VK_ERROR_MEMORY_MAP_FAILED) NAME(VK_ERROR_LAYER_NOT_PRESENT)
        NAME(VK_ERROR_EXTENSION_NOT_PRESENT) NAME(VK_ERROR_FEATURE_NOT_PRESENT)
        NAME(VK_ERROR_INCOMPATIBLE_DRIVER) NAME(VK_ERROR_TOO_MANY_OBJECTS)
        NAME(VK_ERROR_FORMAT_NOT_SUPPORTED) NAME(VK_ERROR_FRAGMENTED_POOL)
        NAME(VK_ERROR_OUT_OF_POOL_MEMORY) NAME(VK_ERROR_UNKNOWN)
#undef NAME
    default: return "VkResult(unknown)";
    }
}

qat_status qat_vk_error(VkResult r, const char *what)
{
    qat_status status = (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
                            ? QAT_ERR_NOMEM : QAT_ERR_VULKAN;
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return qat_error_set(status, "%s failed: %s (no Vulkan driver found; install Debian's "
                             "mesa-vulkan-drivers for the CPU driver lavapipe)", what, qat_vk_result_name(r));
    return qat_error_set(status, "%s failed: %s", what, qat_vk_result_name(r));
}

#define VK_TRY(call, what)                                                     \
    do {                                                                       \
        VkResult vk_try_result_ = (call);                                      \
        if (vk_try_result_ != VK_SUCCESS) return qat_vk_error(vk_try_result_, what); \
    } while (0)

static const char *type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

/* Lower is preferred. */
static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    qat_ctx *ctx = user;
    ctx->validation_messages++;
    fprintf(stderr, "qat: vulkan validation (%s): %s\n",
            (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
            data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static bool layer_available(const char *name)
{
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *layers = qat_xcalloc(n, sizeof *layers);
    vkEnumerateInstanceLayerProperties(&n, layers);
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(layers[i].layerName, name) == 0) found = true;
    free(layers);
    return found;
}

static qat_status create_instance(qat_ctx *ctx, bool validate)
{
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "qat",
        .applicationVersion = 1,
        .pEngineName = "qat",
        .engineVersion = 1,
        .apiVersion = VK_API_VERSION_1_2,
    };
    const char *layers[] = { "VK_LAYER_KHRONOS_validation" };
    const char *extensions[] = { VK_EXT_DEBUG_UTILS_EXTENSION_NAME };
    if (validate && !layer_available(layers[0]))
        return qat_error_set(QAT_ERR_VULKAN, "QAT_VK_VALIDATE is set but VK_LAYER_KHRONOS_validation "
                             "is not installed (Debian package vulkan-validationlayers)");
    VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation_message,
        .pUserData = ctx,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validate ? &messenger_info : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = validate ? 1 : 0,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = validate ? 1 : 0,
        .ppEnabledExtensionNames = extensions,
    };
    VK_TRY(vkCreateInstance(&info, NULL, &ctx->instance), "vkCreateInstance");
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(ctx->instance, "vkCreateDebugUtilsMessengerEXT");
        if (!create) return qat_error_set(QAT_ERR_VULKAN, "vkCreateDebugUtilsMessengerEXT not available");
        VK_TRY(create(ctx->instance, &messenger_info, NULL, &ctx->messenger), "vkCreateDebugUtilsMessengerEXT");
    }
    ctx->validate = validate;
    return QAT_OK;
}

static void fill_info(VkPhysicalDevice pd, int index, qat_device_info *info)
{
    VkPhysicalDeviceDriverProperties driver = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES };
    VkPhysicalDeviceProperties2 props = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver };
    vkGetPhysicalDeviceProperties2(pd, &props);
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    memset(info, 0, sizeof *info);
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", props.properties.deviceName);
    info->type = props.properties.deviceType;
    info->type_name = type_name(info->type);
    info->vendor_id = props.properties.vendorID;
    info->device_id = props.properties.deviceID;
    info->api_version = props.properties.apiVersion;
    info->driver_version = props.properties.driverVersion;
    snprintf(info->driver_name, sizeof info->driver_name, "%s", driver.driverName);
    snprintf(info->driver_info, sizeof info->driver_info, "%s", driver.driverInfo);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mem.memoryHeaps[i].size > info->device_local_bytes)
            info->device_local_bytes = mem.memoryHeaps[i].size;
}

static bool name_matches(const char *name, const char *pattern)
{
    size_t n = strlen(name), m = strlen(pattern);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m && tolower((unsigned char)name[i + j]) == tolower((unsigned char)pattern[j])) j++;
        if (j == m) return true;
    }
    return false;
}

static qat_status choose_device(const qat_device_info *devs, int count, const char *selector, int *chosen)
{
    *chosen = -1;
    if (count == 0)
        return qat_error_set(QAT_ERR_VULKAN, "no Vulkan device found (install Debian's "
                             "mesa-vulkan-drivers for the CPU driver lavapipe)");
    const char *source = "--device";
    if (!selector || !*selector) {
        selector = getenv("QAT_DEVICE");
        source = "QAT_DEVICE";
    }
    if (selector && *selector) {
        char *end;
        long idx = strtol(selector, &end, 10);
        if (*end == '\0') {
            if (idx < 0 || idx >= count)
                return qat_error_set(QAT_ERR_INVALID, "%s: device index %ld out of range (0..%d; see `qat devices`)",
                                     source, idx, count - 1);
            *chosen = (int)idx;
            return QAT_OK;
        }
        for (int i = 0; i < count; i++)
            if (name_matches(devs[i].name, selector)) {
                *chosen = i;
                return QAT_OK;
            }
        return qat_error_set(QAT_ERR_INVALID, "%s: no device name contains \"%s\" (see `qat devices`)",
                             source, selector);
    }
    int best = 0;
    for (int i = 1; i < count; i++)
        if (type_rank(devs[i].type) < type_rank(devs[best].type)) best = i;
    *chosen = best;
    return QAT_OK;
}

static qat_status enumerate(VkInstance instance, VkPhysicalDevice **pds, qat_device_info **devs, int *count)
{
    uint32_t n = 0;
    VK_TRY(vkEnumeratePhysicalDevices(instance, &n, NULL), "vkEnumeratePhysicalDevices");
    *pds = qat_xcalloc(n, sizeof **pds);
    VK_TRY(vkEnumeratePhysicalDevices(instance, &n, *pds), "vkEnumeratePhysicalDevices");
    *devs = qat_xcalloc(n, sizeof **devs);
    for (uint32_t i = 0; i < n; i++) fill_info((*pds)[i], (int)i, &(*devs)[i]);
    *count = (int)n;
    return QAT_OK;
}

qat_status qat_devices_list(const char *selector, qat_device_info **devices, int *count, int *chosen)
{
    qat_ctx tmp = { 0 };
    *devices = NULL;
    *count = 0;
    *chosen = -1;
    QAT_TRY(create_instance(&tmp, false));
    VkPhysicalDevice *pds = NULL;
    qat_status st = enumerate(tmp.instance, &pds, devices, count);
    if (st == QAT_OK) st = choose_device(*devices, *count, selector, chosen);
    free(pds);
    vkDestroyInstance(tmp.instance, NULL);
    return st;
}

static qat_status create_device(qat_ctx *ctx)
{
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &nq, NULL);
    VkQueueFamilyProperties *qf = qat_xcalloc(nq, sizeof *qf);
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &nq, qf);
    uint32_t family = UINT32_MAX;
    /* A compute queue that is also a graphics queue is the general one every
     * driver supports best; fall back to any compute queue. */
    for (uint32_t i = 0; i < nq && family == UINT32_MAX; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && (qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) family = i;
    for (uint32_t i = 0; i < nq && family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) family = i;
    free(qf);
    if (family == UINT32_MAX)
        return qat_error_set(QAT_ERR_VULKAN, "device \"%s\" has no compute queue", ctx->info.name);
    if (VK_API_VERSION_MINOR(ctx->info.api_version) < 2 && VK_API_VERSION_MAJOR(ctx->info.api_version) == 1)
        return qat_error_set(QAT_ERR_VULKAN, "device \"%s\" supports Vulkan %u.%u; qat needs 1.2",
                             ctx->info.name, VK_API_VERSION_MAJOR(ctx->info.api_version),
                             VK_API_VERSION_MINOR(ctx->info.api_version));
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    VkDeviceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &queue,
    };
    VK_TRY(vkCreateDevice(ctx->physical, &info, NULL, &ctx->device), "vkCreateDevice");
    ctx->queue_family = family;
    vkGetDeviceQueue(ctx->device, family, 0, &ctx->queue);
    return QAT_OK;
}

static qat_status create_layouts(qat_ctx *ctx)
{
    VkDescriptorSetLayoutBinding bindings[QAT_MAX_BINDINGS + QAT_TEXEL_BINDINGS];
    for (uint32_t i = 0; i < QAT_MAX_BINDINGS + QAT_TEXEL_BINDINGS; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = i < QAT_MAX_BINDINGS ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
                                                   : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = QAT_MAX_BINDINGS + QAT_TEXEL_BINDINGS,
        .pBindings = bindings,
    };
    VK_TRY(vkCreateDescriptorSetLayout(ctx->device, &set_info, NULL, &ctx->set_layout), "vkCreateDescriptorSetLayout");
    VkPushConstantRange push = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .offset = 0,
        .size = QAT_PUSH_WORDS * 4,
    };
    VkPipelineLayoutCreateInfo layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &ctx->set_layout,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &push,
    };
    VK_TRY(vkCreatePipelineLayout(ctx->device, &layout_info, NULL, &ctx->pipeline_layout), "vkCreatePipelineLayout");
    return QAT_OK;
}

qat_status qat_ctx_init(const char *selector, qat_ctx **out)
{
    *out = NULL;
    qat_ctx *ctx = qat_xcalloc(1, sizeof *ctx);
    qat_status st = create_instance(ctx, env_flag("QAT_VK_VALIDATE"));
    VkPhysicalDevice *pds = NULL;
    qat_device_info *devs = NULL;
    int count = 0, chosen = -1;
    if (st == QAT_OK) st = enumerate(ctx->instance, &pds, &devs, &count);
    if (st == QAT_OK) st = choose_device(devs, count, selector, &chosen);
    if (st == QAT_OK) {
        ctx->physical = pds[chosen];
        ctx->info = devs[chosen];
        vkGetPhysicalDeviceProperties(ctx->physical, &ctx->props);
        vkGetPhysicalDeviceMemoryProperties(ctx->physical, &ctx->memory_props);
        st = create_device(ctx);
    }
    free(pds);
    free(devs);
    if (st == QAT_OK) st = create_layouts(ctx);
    if (st == QAT_OK) {
        VkCommandPoolCreateInfo pool_info = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
            .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
            .queueFamilyIndex = ctx->queue_family,
        };
        VkResult r = vkCreateCommandPool(ctx->device, &pool_info, NULL, &ctx->command_pool);
        if (r != VK_SUCCESS) st = qat_vk_error(r, "vkCreateCommandPool");
    }
    if (st == QAT_OK) {
        VkCommandBufferAllocateInfo alloc = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = ctx->command_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        VkResult r = vkAllocateCommandBuffers(ctx->device, &alloc, &ctx->oneshot);
        if (r != VK_SUCCESS) st = qat_vk_error(r, "vkAllocateCommandBuffers");
    }
    if (st == QAT_OK) {
        VkFenceCreateInfo fence_info = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
        VkResult r = vkCreateFence(ctx->device, &fence_info, NULL, &ctx->fence);
        if (r != VK_SUCCESS) st = qat_vk_error(r, "vkCreateFence");
    }
    if (st == QAT_OK) st = qat_buffer_create(ctx, 1 << 20, true, &ctx->staging);
    if (st == QAT_OK) st = qat_buffer_create(ctx, QAT_BUFFER_ALIGN, false, &ctx->dummy);
    if (st == QAT_OK) st = qat_texel_view_create(ctx, &ctx->dummy, 0, QAT_BUFFER_ALIGN, VK_FORMAT_R32G32B32A32_SFLOAT,
                                                     &ctx->dummy_view);
    if (st == QAT_OK) st = qat_texel_view_create(ctx, &ctx->dummy, 0, QAT_BUFFER_ALIGN, VK_FORMAT_R32G32B32A32_UINT,
                                                     &ctx->dummy_view_uint);
    if (st != QAT_OK) {
        qat_ctx_free(ctx);
        return st;
    }
    *out = ctx;
    return QAT_OK;
}

void qat_ctx_free(qat_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->validation_messages)
        fprintf(stderr, "qat: the Vulkan validation layers reported %u message(s)\n", ctx->validation_messages);
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        qat_kernels_release(ctx);
        qat_buffer_destroy(ctx, &ctx->staging);
        if (ctx->dummy_view) vkDestroyBufferView(ctx->device, ctx->dummy_view, NULL);
        if (ctx->dummy_view_uint) vkDestroyBufferView(ctx->device, ctx->dummy_view_uint, NULL);
        qat_buffer_destroy(ctx, &ctx->dummy);
        if (ctx->fence) vkDestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->command_pool) vkDestroyCommandPool(ctx->device, ctx->command_pool, NULL);
        if (ctx->pipeline_layout) vkDestroyPipelineLayout(ctx->device, ctx->pipeline_layout, NULL);
        if (ctx->set_layout) vkDestroyDescriptorSetLayout(ctx->device, ctx->set_layout, NULL);
        vkDestroyDevice(ctx->device, NULL);
    }
    if (ctx->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(ctx->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(ctx->instance, ctx->messenger, NULL);
    }
    if (ctx->instance) vkDestroyInstance(ctx->instance, NULL);
    free(ctx);
}

bool qat_ctx_is_cpu(const qat_ctx *ctx) { return ctx->info.type == VK_PHYSICAL_DEVICE_TYPE_CPU; }

static int find_memory_type(const qat_ctx *ctx, uint32_t type_bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < ctx->memory_props.memoryTypeCount; i++)
        if ((type_bits & (1u << i)) && (ctx->memory_props.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

qat_status qat_buffer_create(qat_ctx *ctx, VkDeviceSize size, bool host_visible, qat_buffer *out)
{
    memset(out, 0, sizeof *out);
    if (size == 0) size = QAT_BUFFER_ALIGN;
    VkBufferCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VK_TRY(vkCreateBuffer(ctx->device, &info, NULL, &out->buffer), "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, out->buffer, &req);
    int type;
    if (host_visible) {
        type = find_memory_type(ctx, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                             VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                                                             VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
        if (type < 0)
            type = find_memory_type(ctx, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                                 VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    } else {
        type = find_memory_type(ctx, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (type < 0) type = find_memory_type(ctx, req.memoryTypeBits, 0);
    }
    if (type < 0) {
        vkDestroyBuffer(ctx->device, out->buffer, NULL);
        out->buffer = VK_NULL_HANDLE;
        return qat_error_set(QAT_ERR_VULKAN, "no suitable memory type for a %s buffer",
                             host_visible ? "host-visible" : "device-local");
    }
    VkMemoryAllocateInfo alloc = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    VkResult r = vkAllocateMemory(ctx->device, &alloc, NULL, &out->memory);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(ctx->device, out->buffer, NULL);
        out->buffer = VK_NULL_HANDLE;
        return qat_error_set(QAT_ERR_NOMEM, "cannot allocate %llu bytes of %s memory: %s",
                             (unsigned long long)req.size, host_visible ? "host-visible" : "device",
                             qat_vk_result_name(r));
    }
    VK_TRY(vkBindBufferMemory(ctx->device, out->buffer, out->memory, 0), "vkBindBufferMemory");
    if (ctx->memory_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        VK_TRY(vkMapMemory(ctx->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->mapped), "vkMapMemory");
    out->size = size;
    out->allocated = req.size;
    ctx->device_bytes += req.size;
    if (ctx->device_bytes > ctx->peak_device_bytes) ctx->peak_device_bytes = ctx->device_bytes;
    return QAT_OK;
}

void qat_buffer_destroy(qat_ctx *ctx, qat_buffer *buf)
{
    if (buf->buffer) vkDestroyBuffer(ctx->device, buf->buffer, NULL);
    if (buf->memory) {
        vkFreeMemory(ctx->device, buf->memory, NULL);
        ctx->device_bytes -= buf->allocated;
    }
    memset(buf, 0, sizeof *buf);
}

qat_status qat_texel_view_create(qat_ctx *ctx, const qat_buffer *buf, VkDeviceSize offset, VkDeviceSize bytes,
                                 VkFormat format, VkBufferView *out)
{
    /* The range must be whole texels; tensors live in QAT_BUFFER_ALIGN slots,
     * so rounding up to 16 bytes stays inside the slot. */
    VkDeviceSize range = (bytes + 15) / 16 * 16;
    if (offset + range > buf->size) range = (buf->size - offset) / 16 * 16;
    VkBufferViewCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = buf->buffer,
        .format = format,
        .offset = offset,
        .range = range ? range : 16,
    };
    VK_TRY(vkCreateBufferView(ctx->device, &info, NULL, out), "vkCreateBufferView");
    return QAT_OK;
}

qat_status qat_ctx_submit_wait(qat_ctx *ctx, VkCommandBuffer cmd)
{
    VkSubmitInfo submit = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &cmd,
    };
    VK_TRY(vkResetFences(ctx->device, 1, &ctx->fence), "vkResetFences");
    VK_TRY(vkQueueSubmit(ctx->queue, 1, &submit, ctx->fence), "vkQueueSubmit");
    VK_TRY(vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    return QAT_OK;
}

static qat_status ensure_staging(qat_ctx *ctx, size_t size)
{
    if (ctx->staging.size >= size) return QAT_OK;
    VkDeviceSize want = ctx->staging.size;
    while (want < size) want *= 2;
    qat_buffer_destroy(ctx, &ctx->staging);
    return qat_buffer_create(ctx, want, true, &ctx->staging);
}

static qat_status copy_oneshot(qat_ctx *ctx, VkBuffer src, VkDeviceSize src_off, VkBuffer dst,
                               VkDeviceSize dst_off, VkDeviceSize size)
{
    VkCommandBufferBeginInfo begin = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_TRY(vkBeginCommandBuffer(ctx->oneshot, &begin), "vkBeginCommandBuffer");
    /* Earlier submissions may have written or may read the destination in
     * shaders; the fence wait makes them complete but not their writes
     * available to transfers, hence the barrier on both sides. */
    VkMemoryBarrier before = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(ctx->oneshot, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
    VkBufferCopy region = { .srcOffset = src_off, .dstOffset = dst_off, .size = size };
    vkCmdCopyBuffer(ctx->oneshot, src, dst, 1, &region);
    VkMemoryBarrier after = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(ctx->oneshot, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &after, 0,
                         NULL, 0, NULL);
    VK_TRY(vkEndCommandBuffer(ctx->oneshot), "vkEndCommandBuffer");
    return qat_ctx_submit_wait(ctx, ctx->oneshot);
}

qat_status qat_buffer_upload(qat_ctx *ctx, const qat_buffer *dst, VkDeviceSize offset, const void *src, size_t size)
{
    QAT_ASSERT(offset + size <= dst->size);
    if (size == 0) return QAT_OK;
    QAT_TRY(ensure_staging(ctx, size));
    memcpy(ctx->staging.mapped, src, size);
    return copy_oneshot(ctx, ctx->staging.buffer, 0, dst->buffer, offset, size);
}

qat_status qat_buffer_download(qat_ctx *ctx, const qat_buffer *src, VkDeviceSize offset, void *dst, size_t size)
{
    QAT_ASSERT(offset + size <= src->size);
    if (size == 0) return QAT_OK;
    QAT_TRY(ensure_staging(ctx, size));
    QAT_TRY(copy_oneshot(ctx, src->buffer, offset, ctx->staging.buffer, 0, size));
    memcpy(dst, ctx->staging.mapped, size);
    return QAT_OK;
}
