-- The build, in the subset of premake that both premake5 and Debian's
-- premake4 (4.3) understand: `premake4 --file=premake5.lua gmake`.
-- The top-level Makefile drives it; shaders are compiled to SPIR-V by the
-- `shaders` target of that Makefile, run as a pre-build step of qatcore so a
-- plain premake build also gets them.
--
-- Configurations: release (optimised), debug, sanitize (ASan + UBSan).

local warnings = { "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE" }

solution "qat"
  location "build"
  language "C"
  configurations { "release", "debug", "sanitize" }
  includedirs { ".", "build/gen" }
  buildoptions(warnings)
  flags { "Symbols" }  -- keeps debug info and stops premake4 from stripping (-s)

  configuration "release"
    buildoptions { "-O2", "-g" }
  configuration "debug"
    buildoptions { "-O0", "-g3" }
  configuration "sanitize"
    buildoptions { "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined" }
    linkoptions { "-fsanitize=address,undefined" }

  -- Engine, ops, datasets, checkpoint code and the report generator;
  -- everything links this.
  project "qatcore"
    kind "StaticLib"
    files { "qat/*.c", "qat/*.h", "qat/bits/*.c", "ops/*.c", "ops/*.h", "datasets/*.c", "datasets/*.h", "reports/*.c", "reports/*.h" }
    prebuildcommands { "$(MAKE) --no-print-directory -C .. shaders" }
    configuration "release"
      targetdir "build/lib/release"
      objdir "build/obj/release"
    configuration "debug"
      targetdir "build/lib/debug"
      objdir "build/obj/debug"
    configuration "sanitize"
      targetdir "build/lib/sanitize"
      objdir "build/obj/sanitize"

  -- The `qat` command.
  project "qat"
    kind "ConsoleApp"
    files { "qat/cli/*.c", "qat/cli/*.h" }
    links { "qatcore", "vulkan", "z", "png", "m" }
    configuration "release"
      targetdir "bin"
      objdir "build/obj/release"
    configuration "debug"
      targetdir "bin/debug"
      objdir "build/obj/debug"
    configuration "sanitize"
      targetdir "bin/sanitize"
      objdir "build/obj/sanitize"

  -- Criterion suites; one binary, every tests/*.c.
  project "qat_tests"
    kind "ConsoleApp"
    files { "tests/*.c", "tests/*.h" }
    links { "qatcore", "criterion", "vulkan", "z", "png", "m" }
    configuration "release"
      targetdir "bin"
      objdir "build/obj/release"
    configuration "debug"
      targetdir "bin/debug"
      objdir "build/obj/debug"
    configuration "sanitize"
      targetdir "bin/sanitize"
      objdir "build/obj/sanitize"

  -- Benchmarks; OpenBLAS is the reference sgemm and is linked here only.
  project "qat-bench"
    kind "ConsoleApp"
    files { "bench/*.c", "bench/*.h" }
    includedirs { "/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas" }
    links { "qatcore", "openblas", "vulkan", "z", "png", "m" }
    configuration "release"
      targetdir "bin"
      objdir "build/obj/release"
    configuration "debug"
      targetdir "bin/debug"
      objdir "build/obj/debug"
    configuration "sanitize"
      targetdir "bin/sanitize"
      objdir "build/obj/sanitize"
