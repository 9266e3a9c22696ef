# mimic — top-level build. `make run` and `make test` are the two commands a
# user types; everything else is documented in docs/install.md.
#
# Every external is overridable for clusters without apt or pkg-config:
#   make CC=icx BLAS_CFLAGS=... BLAS_LIBS="-lmkl_rt" LUA_CFLAGS=... LUA_LIBS=... \
#        HDF5_CFLAGS=... HDF5_LIBS=... SKIP_DEPS=1

PREFIX    ?= /usr/local
OPT       ?= -O2
NATIVE    ?= 0
PKG_CONFIG ?= pkg-config
LUA_PC    ?= lua5.4
LUA       ?= lua5.4

# --- dependencies: installed (when root) or reported before anything is built -----
NODEPS_GOALS := clean distclean help
ifeq ($(SKIP_DEPS)$(filter $(NODEPS_GOALS),$(MAKECMDGOALS)),)
DEPS_STATUS := $(shell sh scripts/install-deps >&2; echo $$?)
ifneq ($(DEPS_STATUS),0)
$(error missing system packages: see the message above (or set SKIP_DEPS=1 and give the flags by hand))
endif
endif

pc = $(shell $(PKG_CONFIG) $(1) 2>/dev/null)
BLAS_CFLAGS ?= $(call pc,--cflags openblas)
BLAS_LIBS   ?= $(or $(call pc,--libs openblas),-lopenblas)
LUA_CFLAGS  ?= $(call pc,--cflags $(LUA_PC))
LUA_LIBS    ?= $(or $(call pc,--libs $(LUA_PC)),-llua5.4)
READLINE_LIBS ?= -lreadline
OPENMP_FLAGS ?= -fopenmp
# HDF5: tensor-dictionary files (core/io). Only core/io/*.c includes hdf5.h;
# mimic's installed headers do not, so hosts need HDF5 at link time only.
HDF5_CFLAGS ?= $(call pc,--cflags hdf5)
HDF5_LIBS   ?= $(or $(call pc,--libs hdf5),-lhdf5)
# FFTW3: only the solvers-side library (core/solvers) uses it. FFTW is GPL, so
# it never enters libmimic; see docs/install.md for what linking it implies.
FFTW_CFLAGS ?= $(call pc,--cflags fftw3)
FFTW_LIBS   ?= $(or $(call pc,--libs fftw3),-lfftw3)

ARCH_FLAGS := $(if $(filter 1,$(NATIVE)),-march=native,)
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unknown-pragmas
CSTD      := -std=c11 -D_POSIX_C_SOURCE=200809L
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) $(ARCH_FLAGS) $(OPENMP_FLAGS) -fPIC -Icore/include -Icore $(BLAS_CFLAGS) $(HDF5_CFLAGS)
LDLIBS_CORE = $(BLAS_LIBS) $(HDF5_LIBS) $(OPENMP_FLAGS) -lm

B := build
# The inference runtime a host links: tensor, ops (later nn plan, io, embed).
# core/solvers is excluded: it is the separate, FFTW-linked solvers library.
# core/interop is excluded too: it is libmimic_interop (ONNX, links libprotobuf-c).
CORE_SRC  := $(sort $(filter-out core/solvers/% core/interop/%,$(wildcard core/*/*.c)))
CORE_OBJ  := $(CORE_SRC:%.c=$(B)/obj/%.o)
# The Lua binding (one C file per core concern) and the executable.
LUA_SRC   := $(sort $(filter-out lua/main.c,$(wildcard lua/*.c)))
LUA_OBJ   := $(LUA_SRC:%.c=$(B)/obj/%.o)

LIB_A     := $(B)/lib/libmimic.a
LIB_SO    := $(B)/lib/libmimic.so
# Solvers-side library (reference physics, spectra): libmimic + FFTW (GPL).
SOLVERS_SRC := $(sort $(shell find core/solvers -name '*.c' 2>/dev/null))
SOLVERS_OBJ := $(SOLVERS_SRC:%.c=$(B)/obj/%.o)
SOLVERS_A   := $(B)/lib/libmimic_solvers.a
SOLVERS_SO  := $(B)/lib/libmimic_solvers.so
LDLIBS_SOLVERS = $(FFTW_LIBS)
# ONNX interoperability (core/interop, docs/interop.md): libmimic_interop, linked
# by the Lua module and the executable, never by libmimic. Its protobuf code is
# generated at build time by protoc-c from the system's onnx.proto (Debian:
# libonnx-dev, protobuf-c-compiler, libprotobuf-c-dev), into build/gen/.
ONNX_PROTO  ?= /usr/include/onnx/onnx.proto
PROTOC_C    ?= protoc-c
PROTOBUF_C_CFLAGS ?= $(call pc,--cflags libprotobuf-c)
PROTOBUF_C_LIBS   ?= $(or $(call pc,--libs libprotobuf-c),-lprotobuf-c)
INTEROP_SRC := $(sort $(wildcard core/interop/*.c))
INTEROP_OBJ := $(INTEROP_SRC:%.c=$(B)/obj/%.o) $(B)/obj/gen/onnx.pb-c.o
INTEROP_A   := $(B)/lib/libmimic_interop.a
INTEROP_SO  := $(B)/lib/libmimic_interop.so
LDLIBS_INTEROP = $(PROTOBUF_C_LIBS)
LUA_MOD   := $(B)/lib/lua/5.4/mimic.so
EXE       := $(B)/bin/mimic
PC_FILE   := $(B)/mimic.pc
# Lua scripts called from a host (lua/include/mimic/script.h): the binding's
# objects as a library that links libmimic, libmimic_solvers and Lua.
LIB_LUA_A  := $(B)/lib/libmimic_lua.a
LIB_LUA_SO := $(B)/lib/libmimic_lua.so
LUA_PC_FILE := $(B)/mimic-lua.pc
# find_package(mimic): relocatable config written from cmake/*.in.
CMAKE_FILES := $(B)/cmake/mimicConfig.cmake $(B)/cmake/mimicConfigVersion.cmake
VERSION   := $(shell sed -n 's/^\#define MIMIC_VERSION "\(.*\)"/\1/p' core/include/mimic/base.h)
# Fortran: the module fortran/mimic.f90 and its tests (tests/fortran/).
# (make's built-in default FC is f77: only a user's FC= or environment wins.)
ifeq ($(origin FC),default)
FC        := gfortran
endif
FFLAGS    ?= -O2 -g
# -Werror for the module only: gfortran's -Wuninitialized misfires on tests'
# allocatable and c_f_pointer code.
FWARN     := -Wall -Wextra -Wno-compare-reals -Wno-function-elimination -std=f2008

.PHONY: all run test check test-asan test-install fuzz bench install uninstall clean help fixtures report-example
all: $(LIB_A) $(LIB_SO) $(SOLVERS_A) $(SOLVERS_SO) $(INTEROP_A) $(INTEROP_SO) $(LUA_MOD) $(EXE) $(PC_FILE) \
  $(LIB_LUA_A) $(LIB_LUA_SO) $(LUA_PC_FILE) $(CMAKE_FILES)

help:
	@echo "make            build libraries, Lua module, executable, mimic.pc into build/"
	@echo "make run        build and run the flagship experiment (scripts/flagship.lua)"
	@echo "make test       C unit tests (plain and ASan+UBSan) and luaunit suites"
	@echo "make bench      benchmarks with ratios against baselines measured in the same run"
	@echo "make report-example     regenerate validation/report-example (mimic.report's worked example)"
	@echo "make study-radiation     regenerate validation/radiation and models/rad_lw_* (~20 min)"
	@echo "make install PREFIX=/opt/mimic   install libraries, headers, module, executable"
	@echo "make test-install   install into a temporary prefix and build C, CMake and Fortran hosts"
	@echo "options: NATIVE=1 (tune for this CPU), OPT=-O3, CC=, BLAS_LIBS=, LUA_CFLAGS=, SKIP_DEPS=1"

# rng.c: no fused multiply-add, so the normal sampler is the same on every CPU.
$(B)/obj/core/tensor/rng.o: EXTRA_CFLAGS := -ffp-contract=off
# flat.c: sqrtf without errno, so the fused Adam loop vectorises (same values).
$(B)/obj/core/optim/flat.o: EXTRA_CFLAGS := -fno-math-errno

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/lua/%.o: lua/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ilua/include $(LUA_CFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/core/solvers/%.o: core/solvers/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(FFTW_CFLAGS) -MMD -MP -c $< -o $@

# The generated code is compiled with the project's warnings (it passes them).
$(B)/gen/onnx.pb-c.h: $(B)/gen/onnx.pb-c.c ; @:
$(B)/gen/onnx.pb-c.c: $(ONNX_PROTO)
	@mkdir -p $(B)/gen
	@test -r $(ONNX_PROTO) || { echo "mimic: $(ONNX_PROTO) is missing: apt-get install libonnx-dev (or set ONNX_PROTO=)" >&2; exit 1; }
	cp $(ONNX_PROTO) $(B)/gen/onnx.proto && cd $(B)/gen && $(PROTOC_C) --c_out=. onnx.proto
$(B)/obj/gen/onnx.pb-c.o: $(B)/gen/onnx.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(PROTOBUF_C_CFLAGS) -I$(B)/gen -MMD -MP -c $< -o $@
$(B)/obj/core/interop/%.o: core/interop/%.c $(B)/gen/onnx.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(PROTOBUF_C_CFLAGS) -I$(B)/gen -MMD -MP -c $< -o $@
$(INTEROP_A): $(INTEROP_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(INTEROP_SO): $(INTEROP_OBJ) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(INTEROP_OBJ) -L$(B)/lib -lmimic $(LDLIBS_INTEROP) $(LDLIBS_CORE)

$(LIB_A): $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ $(LDLIBS_CORE)

$(SOLVERS_A): $(SOLVERS_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SOLVERS_SO): $(SOLVERS_OBJ) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(SOLVERS_OBJ) -L$(B)/lib -lmimic $(LDLIBS_SOLVERS) $(LDLIBS_CORE)

# The module links the core statically: `require "mimic"` needs no LD_LIBRARY_PATH.
# -z nodelete: lua_close() would dlclose the module and unmap libgomp/OpenBLAS
# under their idle worker threads, a crash at interpreter exit.
# lua/lonnx.c refers to libmimic_interop weakly (a host linking libmimic_lua
# alone gets mimic.onnx functions that say what to link), so the interop
# objects are linked as objects here, not pulled from an archive.
$(LUA_MOD): $(LUA_OBJ) $(INTEROP_OBJ) $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-z,nodelete -o $@ $(LUA_OBJ) $(INTEROP_OBJ) $(SOLVERS_A) $(LIB_A) $(LDLIBS_INTEROP) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)

$(EXE): $(B)/obj/lua/main.o $(LUA_OBJ) $(INTEROP_OBJ) $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(OPENMP_FLAGS) -o $@ $(B)/obj/lua/main.o $(LUA_OBJ) $(INTEROP_OBJ) $(SOLVERS_A) $(LIB_A) $(LUA_LIBS) $(READLINE_LIBS) $(LDLIBS_INTEROP) $(LDLIBS_SOLVERS) $(LDLIBS_CORE) -Wl,-E

$(LIB_LUA_A): $(LUA_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIB_LUA_SO): $(LUA_OBJ) $(SOLVERS_SO) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-rpath,'$$ORIGIN' -o $@ $(LUA_OBJ) -L$(B)/lib -lmimic_solvers -lmimic $(LUA_LIBS) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)

# mimic.pc for PREFIX: written at build time for the default prefix and again
# by `make install` for the prefix given there.
write_pc = printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: mimic\nDescription: neural-network surrogates for simulations (inference runtime)\nVersion: %s\nLibs: -L$${libdir} -lmimic\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(LDLIBS_CORE)'
$(PC_FILE): Makefile
	@mkdir -p $(@D)
	@$(write_pc) > $@
# mimic-lua.pc: libmimic_lua links the solvers library, hence FFTW (GPL; docs/install.md).
write_lua_pc = printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: mimic-lua\nDescription: Lua scripts with mimic called from a host program\nVersion: %s\nRequires: mimic = %s\nLibs: -L$${libdir} -lmimic_lua -lmimic_solvers\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(VERSION)' '$(LUA_LIBS) $(LDLIBS_SOLVERS)'
$(LUA_PC_FILE): Makefile
	@mkdir -p $(@D)
	@$(write_lua_pc) > $@
# The CMake package finds its prefix from its own location (relocatable); the
# link dependencies of the static libraries are the ones this build used.
empty :=
space := $(empty) $(empty)
cmake_list = $(subst $(space),;,$(strip $(1)))
$(B)/cmake/mimicConfig.cmake: cmake/mimicConfig.cmake.in Makefile
	@mkdir -p $(@D)
	@sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBS_CORE@|$(call cmake_list,$(LDLIBS_CORE))|g' \
	  -e 's|@LIBS_SOLVERS@|$(call cmake_list,$(LDLIBS_SOLVERS))|g' -e 's|@LIBS_LUA@|$(call cmake_list,$(LUA_LIBS))|g' $< > $@
$(B)/cmake/mimicConfigVersion.cmake: cmake/mimicConfigVersion.cmake.in Makefile
	@mkdir -p $(@D)
	@sed -e 's|@VERSION@|$(VERSION)|g' $< > $@

run: all
	$(EXE) scripts/flagship.lua $(ARGS)

# Studies (not part of `make test`): regenerate validation/<study>/.
report-example: all
	$(EXE) scripts/report_example.lua

# The radiation surrogate (docs/radiation-surrogate.md): the architecture search
# (validation/radiation/search), then the study (validation/radiation), which ships
# models/rad_lw_*.h5 and runs the RCE host. The study trains 2 x 64, the published
# choice: the search's cheaper pick (1 x 64) missed 0.5 W m^-2 in single experiments.
.PHONY: study-radiation
study-radiation: all $(B)/scripts/rad_rce_hybrid
	$(EXE) scripts/rad_search.lua
	$(EXE) scripts/rad_study.lua --arch 2x64

# --- tests ----------------------------------------------------------------------
TEST_SRC  := $(sort $(wildcard tests/c/test_*.c))
TEST_BIN  := $(TEST_SRC:tests/c/%.c=$(B)/tests/%)
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_OBJ  := $(CORE_SRC:%.c=$(B)/asan/%.o)
ASAN_SOLVERS_OBJ := $(SOLVERS_SRC:%.c=$(B)/asan/%.o)
ASAN_BIN  := $(TEST_SRC:tests/c/%.c=$(B)/asan/tests/%)

# Tests link the solvers library too (an archive: only test_spectra pulls it in).
$(B)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/c -o $@ $< $(SOLVERS_A) $(LIB_A) $(LDLIBS_SOLVERS) $(LDLIBS_CORE) -lutil

$(B)/asan/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(ASAN_SOLVERS_OBJ) $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/c -o $@ $< $(ASAN_SOLVERS_OBJ) $(ASAN_OBJ) $(LDLIBS_SOLVERS) $(LDLIBS_CORE) -lutil

$(B)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) $(ASAN_FLAGS) -MMD -MP -c $< -o $@
$(B)/asan/core/solvers/%.o: EXTRA_CFLAGS := $(FFTW_CFLAGS)
$(B)/asan/core/tensor/rng.o: EXTRA_CFLAGS := -ffp-contract=off
$(B)/asan/core/optim/flat.o: EXTRA_CFLAGS := -fno-math-errno
$(B)/asan/lua/%.o: EXTRA_CFLAGS := -Ilua/include $(LUA_CFLAGS)

# test_onnx: the interop library and protobuf-c.
ASAN_INTEROP_OBJ := $(INTEROP_SRC:%.c=$(B)/asan/%.o) $(B)/asan/gen/onnx.pb-c.o
$(B)/tests/test_onnx: tests/c/test_onnx.c $(wildcard tests/c/*.h) $(INTEROP_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/c -o $@ $< $(INTEROP_A) $(LIB_A) $(LDLIBS_INTEROP) $(LDLIBS_CORE)
$(B)/asan/tests/test_onnx: tests/c/test_onnx.c $(wildcard tests/c/*.h) $(ASAN_INTEROP_OBJ) $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/c -o $@ $< $(ASAN_INTEROP_OBJ) $(ASAN_OBJ) $(LDLIBS_INTEROP) $(LDLIBS_CORE)
$(B)/asan/gen/onnx.pb-c.o: $(B)/gen/onnx.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(PROTOBUF_C_CFLAGS) -I$(B)/gen -MMD -MP -c $< -o $@
$(B)/asan/core/interop/%.o: core/interop/%.c $(B)/gen/onnx.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(PROTOBUF_C_CFLAGS) -I$(B)/gen -MMD -MP -c $< -o $@

# test_script runs Lua inside a C host: it also links the binding (libmimic_lua).
ASAN_LUA_OBJ := $(LUA_SRC:%.c=$(B)/asan/%.o)
$(B)/tests/test_script: tests/c/test_script.c $(wildcard tests/c/*.h) $(LIB_LUA_A) $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ilua/include -Itests/c -o $@ $< $(LIB_LUA_A) $(SOLVERS_A) $(LIB_A) $(LUA_LIBS) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)
$(B)/asan/tests/test_script: tests/c/test_script.c $(wildcard tests/c/*.h) $(ASAN_LUA_OBJ) $(ASAN_SOLVERS_OBJ) $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Ilua/include -Itests/c -o $@ $< $(ASAN_LUA_OBJ) $(ASAN_SOLVERS_OBJ) $(ASAN_OBJ) $(LUA_LIBS) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)

# Fortran tests: each tests/fortran/test_*.f90 with the module, built with
# default kinds (r4/), -fdefault-real-8 (r8/) and also -fdefault-integer-8
# (i8/): the module's C-facing kinds are explicit.
# tests/fortran/run generates their model file first; tests/run calls it.
FTEST_SRC := $(sort $(wildcard tests/fortran/test_*.f90))
FTEST_BIN := $(foreach v,r4 r8 i8,$(FTEST_SRC:tests/fortran/%.f90=$(B)/fortran/$(v)/%))
FKIND_r4  :=
FKIND_r8  := -fdefault-real-8
FKIND_i8  := -fdefault-real-8 -fdefault-integer-8
$(B)/fortran/%/mimic.o: fortran/mimic.f90
	@mkdir -p $(@D)
	$(FC) $(FFLAGS) $(FWARN) -Werror $(FKIND_$*) $(OPENMP_FLAGS) -J$(@D) -c $< -o $@
define fortran_test
$(B)/fortran/$(1)/%: tests/fortran/%.f90 $(B)/fortran/$(1)/mimic.o $(LIB_A)
	$$(FC) $$(FFLAGS) $$(FWARN) $$(FKIND_$(1)) -J$$(@D) -o $$@ $$< $$(@D)/mimic.o $$(LIB_A) $$(LDLIBS_CORE)
endef
$(foreach v,r4 r8 i8,$(eval $(call fortran_test,$(v))))

test: all $(TEST_BIN) $(ASAN_BIN) $(FTEST_BIN) $(B)/scripts/rad_rce_hybrid
	@MIMIC_BUILD=$(B) LUA=$(LUA) sh tests/run

# Installs into a temporary prefix and builds hosts against it: C with
# pkg-config (mimic, mimic-lua), CMake find_package(mimic), Fortran.
test-install: all
	@MAKE="$(MAKE)" MIMIC_BUILD=$(B) sh tests/install/run

check: test

# Fuzzing (not part of `make test`): the model-file reader under libFuzzer with
# ASan+UBSan (needs clang; on Debian: apt-get install clang libclang-rt-14-dev).
# Runs FUZZ_TIME seconds from the seed corpus tests/fuzz/corpus; new inputs go
# to build/fuzz/corpus, crashes to build/fuzz/ (docs/model-format.md).
FUZZ_CC   ?= clang
FUZZ_TIME ?= 120
FUZZ_BIN  := $(B)/fuzz/fuzz_modelfile
$(FUZZ_BIN): tests/fuzz/fuzz_modelfile.c tests/fuzz/modelfile_edit.h $(CORE_SRC) $(wildcard core/*/*.h core/include/mimic/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CSTD) $(WARN) -Wno-pass-failed -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -fopenmp \
	  -Icore/include -Icore $(BLAS_CFLAGS) $(HDF5_CFLAGS) -o $@ tests/fuzz/fuzz_modelfile.c $(CORE_SRC) \
	  $(BLAS_LIBS) $(HDF5_LIBS) -lm
fuzz: $(FUZZ_BIN)
	@mkdir -p $(B)/fuzz/corpus
	cd $(B)/fuzz && ./fuzz_modelfile -max_total_time=$(FUZZ_TIME) -max_len=97 -timeout=10 corpus $(CURDIR)/tests/fuzz/corpus

BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)
$(B)/bench/%: tests/bench/%.c tests/bench/benchutil.h $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_A) $(LDLIBS_CORE)
# The radiation bench also times the reference kernels of libmimic_solvers.
$(B)/bench/bench_radiation: tests/bench/bench_radiation.c tests/bench/benchutil.h $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(SOLVERS_A) $(LIB_A) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)

# PyTorch baselines come from Debian's python3-torch (installed here when root).
bench: all $(BENCH_BIN)
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { [ "$$(id -u)" = 0 ] && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null; } || \
	  echo "mimic: python3-torch is missing (apt-get install python3-torch): PyTorch baselines will be skipped" >&2
	@MIMIC_BUILD=$(B) sh tests/bench/run

# Regenerate the reference fixtures (Debian's python3-numpy, python3-torch, ...;
# the tests themselves need no Python).
fixtures:
	for g in tests/fixtures/gen_*.py; do /usr/bin/python3 "$$g" || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/mimic $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/lua/5.4 $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/cmake/mimic \
	  $(DESTDIR)$(PREFIX)/share/mimic/fortran
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(SOLVERS_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SOLVERS_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(INTEROP_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(INTEROP_SO) $(DESTDIR)$(PREFIX)/lib/
	@mkdir -p $(B)/install
	$(CC) $(ALL_CFLAGS) -DMIMIC_LUA_PREFIX='"$(PREFIX)"' -c lua/prefix.c -o $(B)/install/prefix.o
	install -m 644 $(LIB_LUA_A) $(DESTDIR)$(PREFIX)/lib/
	ar r $(DESTDIR)$(PREFIX)/lib/libmimic_lua.a $(B)/install/prefix.o
	install -m 755 $(LIB_LUA_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 core/include/mimic.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 core/include/mimic/*.h lua/include/mimic/*.h $(DESTDIR)$(PREFIX)/include/mimic/
	install -m 644 fortran/mimic.f90 $(DESTDIR)$(PREFIX)/share/mimic/fortran/
	install -d $(DESTDIR)$(PREFIX)/share/mimic/tools
	install -m 755 tools/onnx_eval.py tools/pytorch_to_mimic.py tools/keras_to_mimic.py $(DESTDIR)$(PREFIX)/share/mimic/tools/
	install -m 644 $(CMAKE_FILES) $(DESTDIR)$(PREFIX)/lib/cmake/mimic/
	install -m 755 $(LUA_MOD) $(DESTDIR)$(PREFIX)/lib/lua/5.4/
	install -d $(DESTDIR)$(PREFIX)/share/lua/5.4/mimic
	for f in lua/mimic/*.lua; do [ -e "$$f" ] && install -m 644 "$$f" $(DESTDIR)$(PREFIX)/share/lua/5.4/mimic/ || true; done
	install -m 755 $(EXE) $(DESTDIR)$(PREFIX)/bin/
	$(write_pc) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mimic.pc
	$(write_lua_pc) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mimic-lua.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/mimic
	rm -f $(DESTDIR)$(PREFIX)/include/mimic.h
	rm -f $(DESTDIR)$(PREFIX)/lib/libmimic.a $(DESTDIR)$(PREFIX)/lib/libmimic.so \
	  $(DESTDIR)$(PREFIX)/lib/libmimic_solvers.a $(DESTDIR)$(PREFIX)/lib/libmimic_solvers.so \
	  $(DESTDIR)$(PREFIX)/lib/libmimic_lua.a $(DESTDIR)$(PREFIX)/lib/libmimic_lua.so \
	  $(DESTDIR)$(PREFIX)/lib/libmimic_interop.a $(DESTDIR)$(PREFIX)/lib/libmimic_interop.so \
	  $(DESTDIR)$(PREFIX)/lib/lua/5.4/mimic.so $(DESTDIR)$(PREFIX)/bin/mimic \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/mimic.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/mimic-lua.pc
	rm -rf $(DESTDIR)$(PREFIX)/share/lua/5.4/mimic $(DESTDIR)$(PREFIX)/lib/cmake/mimic $(DESTDIR)$(PREFIX)/share/mimic

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

.SECONDARY:

# The longwave k-distribution (docs/radiation-kdist.md): builds the driver,
# reduces the LBL model into $(KDIST_TABLE) (~21 CPU min) and compares
# k-distribution and LBL fluxes on one column.
KDIST_TABLE ?= data/kdist/mimic-lw-kdist.h5
$(B)/scripts/rad_build_kdist: scripts/rad_build_kdist.c $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(SOLVERS_A) $(LIB_A) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)
.PHONY: kdist
kdist: $(B)/scripts/rad_build_kdist
	@mkdir -p $(dir $(KDIST_TABLE))
	GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null) OMP_NUM_THREADS=2 nice $(B)/scripts/rad_build_kdist build $(KDIST_TABLE)
	OMP_NUM_THREADS=2 nice $(B)/scripts/rad_build_kdist compare $(KDIST_TABLE)

# The a-posteriori test of the neural gas optics (docs/radiation-surrogate.md):
# radiative-convective equilibrium with the reference kernel and with the
# shipped surrogate (RCE_TAU/RCE_PLANCK/RCE_GUARD), report in RCE_OUT.
RCE_TAU ?= models/rad_lw_tau.h5
RCE_PLANCK ?= models/rad_lw_planck.h5
RCE_GUARD ?= models/rad_lw_guard.h5
RCE_OUT ?= $(B)/rce-hybrid
$(B)/scripts/rad_rce_hybrid: scripts/rad_rce_hybrid.c $(SOLVERS_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(SOLVERS_A) $(LIB_A) $(LDLIBS_SOLVERS) $(LDLIBS_CORE)
.PHONY: rce-hybrid
rce-hybrid: $(B)/scripts/rad_rce_hybrid
	OMP_NUM_THREADS=1 $(B)/scripts/rad_rce_hybrid --tau $(RCE_TAU) --planck $(RCE_PLANCK) \
	  $(if $(wildcard $(RCE_GUARD)),--guard $(RCE_GUARD)) --out $(RCE_OUT)
