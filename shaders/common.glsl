// Included by every kernel after its #version line.
// Specialization constants 0..2 are the workgroup size (see qat/kernels.h);
// binding 7 is the per-step scalars buffer (qat/graph.h QAT_SCALAR_*).
layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;

layout(std430, set = 0, binding = 7) readonly buffer Scalars { float scalars[]; };
#define SCALAR_LR 0
#define SCALAR_ADAM_STEP_SIZE 1
#define SCALAR_ADAM_BC2_SQRT 2
#define SCALAR_DECAY_FACTOR 3
#define SCALAR_TRAINING 4
#define SCALAR_STEP_INDEX 5 // uint bits: floatBitsToUint(scalars[SCALAR_STEP_INDEX])

// Linear workgroup index over a 2-d grid, for dispatches wider than the
// 65535-group limit of one dimension.
uint linear_group() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
