# Entry point. `make` builds; `make test` and `make demo` first install the
# Debian packages that are missing, then generate, build and run.
#   make [CONFIG=release|debug|sanitize]   build bin/ (or bin/CONFIG/)
#   make test                              release and ASan+UBSan suites
#   make demo                              train the default model, print where
#   make shaders                           compile shaders/*.comp to SPIR-V

CONFIG ?= release
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Build and test needs, then what the demo needs on top.
BUILD_PKGS := gcc make premake4 glslc spirv-tools libvulkan-dev \
              mesa-vulkan-drivers vulkan-validationlayers libpng-dev \
              zlib1g-dev libcriterion-dev libopenblas-dev pkg-config gnuplot-nox
DATA_PKGS := dataset-fashion-mnist fortunes

GLSLC := glslc
GLSLC_FLAGS := --target-env=vulkan1.2 -O -Werror -Ishaders
SHADERS := $(wildcard shaders/*.comp)
SPV_INC := $(patsubst shaders/%.comp,build/gen/%.spv.inc,$(SHADERS))

.PHONY: all build shaders deps test demo clean FORCE

all: build

deps:
	@scripts/install-deps $(BUILD_PKGS) $(DATA_PKGS)

shaders: $(SPV_INC) build/gen/build_info.h

# The commit the binary was built from, recorded in every run's summary.
# Rewritten only when it changes so it does not force rebuilds.
build/gen/build_info.h: FORCE
	@mkdir -p build/gen
	@c=$$(git rev-parse --verify -q HEAD 2>/dev/null | tr -cd '0-9a-f'); \
	 if [ -z "$$c" ]; then c=unknown; \
	 elif ! git diff --quiet HEAD -- 2>/dev/null; then c="$$c-dirty"; fi; \
	 printf '#define QAT_GIT_COMMIT "%s"\n' "$$c" > $@.tmp; \
	 if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

# A shader that fails to compile fails the build. -mfmt=c writes the SPIR-V
# words as a C initializer that qat/kernels.c includes.
build/gen/%.spv.inc: shaders/%.comp
	@mkdir -p build/gen
	$(GLSLC) $(GLSLC_FLAGS) -MD -MF build/gen/$*.d -mfmt=c -o $@ $<

-include $(wildcard build/gen/*.d)

# premake is rerun every time (it takes milliseconds) so new source files are
# picked up; regenerating the makefiles does not force a rebuild.
build: shaders
	@premake4 --file=premake5.lua gmake >/dev/null
	$(MAKE) --no-print-directory -C build -j$(JOBS) config=$(CONFIG)

test: deps
	$(MAKE) --no-print-directory build CONFIG=release
	$(MAKE) --no-print-directory build CONFIG=sanitize
	scripts/run-tests bin/qat_tests
	scripts/run-tests bin/sanitize/qat_tests

demo: deps build
	scripts/demo

clean:
	rm -rf build bin
