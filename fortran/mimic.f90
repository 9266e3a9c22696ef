! mimic -- Fortran 2008 interface to the embedding API (mimic/embed.h) and the
! profiler (mimic/profile.h). Installed as PREFIX/share/mimic/fortran/mimic.f90:
! compile it with the host's own compiler and flags (a .mod file is specific
! to one compiler version), link libmimic (pkg-config --libs mimic).
!
!   use mimic
!   type(mimic_handle) :: h
!   real(c_double), allocatable, target :: t(:,:), q(:,:), heat(:,:)
!   if (mimic_open("model.h5", h) /= MIMIC_OK) then
!     print '(a)', mimic_last_error(h); stop 1
!   end if
!   st = mimic_bind_input(h, "temperature", t)     ! t(nlev, ncol): no copy
!   st = mimic_bind_input(h, "humidity", q)
!   st = mimic_bind_output(h, "heating", heat)
!   do step = 1, nsteps
!     ...; st = mimic_run(h, ncol); ...
!   end do
!   st = mimic_close(h)
!
! Array layouts. A contract variable has `size` features per sample (column,
! grid point...). mimic reads and writes the host's arrays in place, through
! two strides; nothing is copied by the host and either layout works:
!   x(size, n)  samples_dim = 2 (the default for rank 2): the features of one
!               sample are contiguous (Fortran's column-major order puts the
!               first index fastest), which is mimic's fastest gather. This is
!               the usual "x(nlev, ncol)" of a column physics scheme.
!   x(n, size)  samples_dim = 1: sample i's features are x(i, 1:size), n apart
!               in memory (the leading dimension, for a section of a bigger
!               array); mimic gathers them with a strided (transposing) loop,
!               still without a copy by the host. E.g. "x(ncol, nlev)".
!   x(size)     rank 1, samples_dim = 0 (the default): one sample (n = 1).
!   x(n)        rank 1, samples_dim = 1: n samples of a one-feature variable.
! Sections work as well (x(:, 1:n), x(1:size, :) of a bigger array: the
! strides are taken from the actual memory layout), but not reversed ones.
! Bound arrays are borrowed, not copied: declare them with the TARGET (or
! POINTER) attribute and keep them allocated, and in place, while bound;
! rebind after reallocating. Sample j of the host is sample j-1 in mimic.
! A samples_dim other than those above returns MIMIC_EARG (checked in Fortran,
! so mimic_last_error does not describe it).
!
! Kinds are explicit everywhere (real(c_float), real(c_double),
! integer(c_int64_t)), so the module works unchanged under -fdefault-real-8 or
! -fdefault-integer-8. Options, statuses and counts are default integers.
! Statuses are MIMIC_OK (0) or a negative MIMIC_E* code; the message is
! mimic_last_error(h), except after mimic_load_guard, where it is
! mimic_last_error() (the thread's last error, see there). Names are passed
! without trailing blanks (trim).
module mimic
  use, intrinsic :: iso_c_binding
  implicit none
  private

  public :: c_float, c_double, c_int, c_int64_t, c_ptr, c_null_ptr, c_funloc, c_loc, c_associated

  ! Statuses (mimic/base.h)
  integer, parameter, public :: MIMIC_OK = 0, MIMIC_ENOMEM = -1, MIMIC_EARG = -2, MIMIC_ESHAPE = -3, &
       MIMIC_EDTYPE = -4, MIMIC_EIO = -5, MIMIC_EVALUE = -6, MIMIC_ESTATE = -7, MIMIC_EINTERNAL = -8
  ! Plan precision for mimic_open
  integer, parameter, public :: MIMIC_PRECISION_STORED = 0, MIMIC_PRECISION_F32 = 1, MIMIC_PRECISION_F64 = 2
  integer, parameter, public :: MIMIC_INPUT = 0, MIMIC_OUTPUT = 1
  ! Why a sample was flagged (bits of mimic_last_flags, entries of stats%flagged)
  integer, parameter, public :: MIMIC_FLAG_INPUT_NAN = 1, MIMIC_FLAG_RANGE = 2, MIMIC_FLAG_DISTANCE = 4, &
       MIMIC_FLAG_OUTPUT_NAN = 8, MIMIC_FLAG_BOUNDS = 16, MIMIC_FLAG_RESIDUAL = 32, MIMIC_FLAG_SPREAD = 64, &
       MIMIC_NUM_FLAGS = 7

  integer(c_int), parameter :: DT_F32 = 0, DT_F64 = 1  ! mimic_dtype

  !> One opened model file; mimic_close releases it (and nullifies it).
  type, public :: mimic_handle
     type(c_ptr) :: ptr = c_null_ptr
  end type mimic_handle

  !> Counters of a handle (struct mimic_stats). flagged(k): samples flagged
  !> for bit k-1 (flagged(1): MIMIC_FLAG_INPUT_NAN, ...).
  type, bind(c), public :: mimic_stats
     integer(c_int64_t) :: calls, samples, surrogate, fallback
     integer(c_int64_t) :: flagged(7)
     real(c_double) :: seconds, fallback_seconds
  end type mimic_stats

  !> A profiler (mimic/profile.h): one per thread.
  type, public :: mimic_profiler
     type(c_ptr) :: ptr = c_null_ptr
  end type mimic_profiler

  !> One profiled region, as mimic_prof_get returns it.
  type, public :: mimic_prof_entry
     character(:), allocatable :: name
     integer(c_int64_t) :: calls = 0
     real(c_double) :: total = 0, self = 0  ! seconds, inclusive / exclusive of nested regions
  end type mimic_prof_entry

  type, bind(c) :: c_array
     type(c_ptr) :: data
     integer(c_int) :: dtype
     integer(c_int64_t) :: size, sample_stride, feature_stride
  end type c_array

  type, bind(c) :: c_options
     integer(c_int) :: precision = 0
     integer(c_int64_t) :: chunk = 0
     integer(c_int) :: num_threads = 0
     integer(c_int) :: deterministic = 0
     type(c_funptr) :: log = c_null_funptr
     type(c_ptr) :: log_ud = c_null_ptr
  end type c_options

  type, bind(c) :: c_prof_entry
     type(c_ptr) :: name
     integer(c_int64_t) :: calls
     real(c_double) :: total, self
  end type c_prof_entry

  public :: mimic_open, mimic_close, mimic_last_error, mimic_bind, mimic_bind_input, mimic_bind_output, &
       mimic_run, mimic_set_fallback, mimic_get_stats, mimic_reset_stats, mimic_num_vars, mimic_var_info, &
       mimic_model_hash, mimic_set_output_bounds, mimic_load_guard, mimic_set_num_threads, &
       mimic_get_num_threads, mimic_set_residual, mimic_add_member, mimic_set_spread_limit
  public :: mimic_profiler_new, mimic_profiler_free, mimic_prof_region, mimic_prof_begin, mimic_prof_end, &
       mimic_prof_reset, mimic_prof_count, mimic_prof_get, mimic_prof_elapsed, mimic_prof_report, &
       mimic_amdahl_bound, mimic_break_even_runs
  public :: mimic_fallback_fn, mimic_residual_fn

  !> The host's reference kernel (mimic_set_fallback): recompute the samples
  !> idx(1:count) -- 0-BASED sample numbers, ascending: host sample idx(k)+1 --
  !> from the bound inputs and write their outputs into the bound output
  !> arrays. Return 0, or nonzero to fail the run. Must be bind(c).
  abstract interface
     function mimic_fallback_fn(ud, idx, count) bind(c) result(rc)
       import :: c_ptr, c_int64_t, c_int
       type(c_ptr), value :: ud
       integer(c_int64_t), value :: count
       integer(c_int64_t), intent(in) :: idx(count)
       integer(c_int) :: rc
     end function mimic_fallback_fn
  end interface

  !> The host's conservation check (mimic_set_residual): after the surrogate
  !> wrote the outputs of samples idx(1:count) (0-BASED, as for the fallback),
  !> set residual(k) for sample idx(k); |residual| > tol flags it for the
  !> fallback. Return 0, or nonzero to fail the run. Must be bind(c).
  abstract interface
     function mimic_residual_fn(ud, idx, count, residual) bind(c) result(rc)
       import :: c_ptr, c_int64_t, c_int, c_double
       type(c_ptr), value :: ud
       integer(c_int64_t), value :: count
       integer(c_int64_t), intent(in) :: idx(count)
       real(c_double), intent(out) :: residual(count)
       integer(c_int) :: rc
     end function mimic_residual_fn
  end interface

  !> Binds a host array to a named input (which = MIMIC_INPUT) or output.
  interface mimic_bind
     module procedure bind_f32_2, bind_f64_2, bind_f32_1, bind_f64_1
  end interface mimic_bind
  interface mimic_bind_input
     module procedure bind_in_f32_2, bind_in_f64_2, bind_in_f32_1, bind_in_f64_1
  end interface mimic_bind_input
  interface mimic_bind_output
     module procedure bind_out_f32_2, bind_out_f64_2, bind_out_f32_1, bind_out_f64_1
  end interface mimic_bind_output
  !> Runs the model on host samples 1..n (n of any integer kind).
  interface mimic_run
     module procedure run_i4, run_i8
  end interface mimic_run

  interface
     function c_open(path, opt, out) bind(c, name="mimic_open") result(rc)
       import :: c_char, c_options, c_ptr, c_int
       character(kind=c_char), intent(in) :: path(*)
       type(c_options), intent(in) :: opt
       type(c_ptr), intent(out) :: out
       integer(c_int) :: rc
     end function c_open
     function c_close(h) bind(c, name="mimic_close") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), intent(inout) :: h
       integer(c_int) :: rc
     end function c_close
     function c_last_error(h) bind(c, name="mimic_last_error") result(p)
       import :: c_ptr
       type(c_ptr), value :: h
       type(c_ptr) :: p
     end function c_last_error
     function c_bind(h, which, name, units, a) bind(c, name="mimic_bind") result(rc)
       import :: c_ptr, c_int, c_char, c_array
       type(c_ptr), value :: h
       integer(c_int), value :: which
       character(kind=c_char), intent(in) :: name(*)
       type(c_ptr), value :: units
       type(c_array), intent(in) :: a
       integer(c_int) :: rc
     end function c_bind
     function c_run(h, n) bind(c, name="mimic_run") result(rc)
       import :: c_ptr, c_int, c_int64_t
       type(c_ptr), value :: h
       integer(c_int64_t), value :: n
       integer(c_int) :: rc
     end function c_run
     function c_set_fallback(h, fn, ud) bind(c, name="mimic_set_fallback") result(rc)
       import :: c_ptr, c_funptr, c_int
       type(c_ptr), value :: h
       type(c_funptr), value :: fn
       type(c_ptr), value :: ud
       integer(c_int) :: rc
     end function c_set_fallback
     function c_set_residual(h, fn, ud, tol) bind(c, name="mimic_set_residual") result(rc)
       import :: c_ptr, c_funptr, c_double, c_int
       type(c_ptr), value :: h, ud
       type(c_funptr), value :: fn
       real(c_double), value :: tol
       integer(c_int) :: rc
     end function c_set_residual
     function c_add_member(h, path) bind(c, name="mimic_add_member") result(rc)
       import :: c_ptr, c_char, c_int
       type(c_ptr), value :: h
       character(kind=c_char), intent(in) :: path(*)
       integer(c_int) :: rc
     end function c_add_member
     function c_set_spread_limit(h, lim) bind(c, name="mimic_set_spread_limit") result(rc)
       import :: c_ptr, c_double, c_int
       type(c_ptr), value :: h
       real(c_double), value :: lim
       integer(c_int) :: rc
     end function c_set_spread_limit
     function c_get_stats(h, s) bind(c, name="mimic_get_stats") result(rc)
       import :: c_ptr, c_int, mimic_stats
       type(c_ptr), value :: h
       type(mimic_stats), intent(out) :: s
       integer(c_int) :: rc
     end function c_get_stats
     function c_reset_stats(h) bind(c, name="mimic_reset_stats") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: h
       integer(c_int) :: rc
     end function c_reset_stats
     function c_num_vars(h, which, count) bind(c, name="mimic_num_vars") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: h
       integer(c_int), value :: which
       integer(c_int), intent(out) :: count
       integer(c_int) :: rc
     end function c_num_vars
     function c_var_info(h, which, i, name, units, size) bind(c, name="mimic_var_info") result(rc)
       import :: c_ptr, c_int, c_int64_t
       type(c_ptr), value :: h
       integer(c_int), value :: which, i
       type(c_ptr), intent(out) :: name, units
       integer(c_int64_t), intent(out) :: size
       integer(c_int) :: rc
     end function c_var_info
     function c_model_hash(h) bind(c, name="mimic_model_hash_of") result(p)
       import :: c_ptr
       type(c_ptr), value :: h
       type(c_ptr) :: p
     end function c_model_hash
     function c_set_output_bounds(h, name, lo, hi) bind(c, name="mimic_set_output_bounds") result(rc)
       import :: c_ptr, c_char, c_double, c_int
       type(c_ptr), value :: h
       character(kind=c_char), intent(in) :: name(*)
       real(c_double), value :: lo, hi
       integer(c_int) :: rc
     end function c_set_output_bounds
     function c_guard_load(path) bind(c, name="mimic_guard_load") result(g)
       import :: c_char, c_ptr
       character(kind=c_char), intent(in) :: path(*)
       type(c_ptr) :: g
     end function c_guard_load
     subroutine c_guard_free(g) bind(c, name="mimic_guard_free")
       import :: c_ptr
       type(c_ptr), value :: g
     end subroutine c_guard_free
     function c_set_guard(h, g) bind(c, name="mimic_set_guard") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: h, g
       integer(c_int) :: rc
     end function c_set_guard
     function c_errcode() bind(c, name="mimic_errcode") result(rc)
       import :: c_int
       integer(c_int) :: rc
     end function c_errcode
     subroutine c_set_num_threads(n) bind(c, name="mimic_set_num_threads")
       import :: c_int
       integer(c_int), value :: n
     end subroutine c_set_num_threads
     function c_get_num_threads() bind(c, name="mimic_get_num_threads") result(n)
       import :: c_int
       integer(c_int) :: n
     end function c_get_num_threads
     function c_strlen(s) bind(c, name="strlen") result(n)
       import :: c_ptr, c_size_t
       type(c_ptr), value :: s
       integer(c_size_t) :: n
     end function c_strlen
     ! profiler
     function c_profiler_new() bind(c, name="mimic_profiler_new") result(p)
       import :: c_ptr
       type(c_ptr) :: p
     end function c_profiler_new
     subroutine c_profiler_free(p) bind(c, name="mimic_profiler_free")
       import :: c_ptr
       type(c_ptr), value :: p
     end subroutine c_profiler_free
     function c_prof_region(p, name) bind(c, name="mimic_prof_region") result(id)
       import :: c_ptr, c_char, c_int
       type(c_ptr), value :: p
       character(kind=c_char), intent(in) :: name(*)
       integer(c_int) :: id
     end function c_prof_region
     function c_prof_begin(p, id) bind(c, name="mimic_prof_begin") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: p
       integer(c_int), value :: id
       integer(c_int) :: rc
     end function c_prof_begin
     function c_prof_end(p, id) bind(c, name="mimic_prof_end") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: p
       integer(c_int), value :: id
       integer(c_int) :: rc
     end function c_prof_end
     function c_prof_reset(p) bind(c, name="mimic_prof_reset") result(rc)
       import :: c_ptr, c_int
       type(c_ptr), value :: p
       integer(c_int) :: rc
     end function c_prof_reset
     function c_prof_count(p) bind(c, name="mimic_prof_count") result(n)
       import :: c_ptr, c_int
       type(c_ptr), value :: p
       integer(c_int) :: n
     end function c_prof_count
     function c_prof_get(p, id, e) bind(c, name="mimic_prof_get") result(rc)
       import :: c_ptr, c_int, c_prof_entry
       type(c_ptr), value :: p
       integer(c_int), value :: id
       type(c_prof_entry), intent(out) :: e
       integer(c_int) :: rc
     end function c_prof_get
     function c_prof_elapsed(p) bind(c, name="mimic_prof_elapsed") result(t)
       import :: c_ptr, c_double
       type(c_ptr), value :: p
       real(c_double) :: t
     end function c_prof_elapsed
     function c_amdahl_bound(f, c) bind(c, name="mimic_amdahl_bound") result(s)
       import :: c_double
       real(c_double), value :: f, c
       real(c_double) :: s
     end function c_amdahl_bound
     function c_break_even_runs(run_seconds, speedup, oneoff) bind(c, name="mimic_break_even_runs") result(r)
       import :: c_double
       real(c_double), value :: run_seconds, speedup, oneoff
       real(c_double) :: r
     end function c_break_even_runs
  end interface

contains

  ! ---- helpers ----------------------------------------------------------------

  !> A C string (NUL-terminated) as a Fortran string; NULL gives "".
  function from_c(p) result(s)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    if (.not. c_associated(p)) then
       s = ""
       return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate (character(n) :: s)
    do i = 1, n
       s(i:i) = chars(i)
    end do
  end function from_c

  function cstr(s) result(c)
    character(*), intent(in) :: s
    character(kind=c_char, len=:), allocatable :: c
    c = trim(s)//c_null_char
  end function cstr

  !> Distance in elements between two elements of an array (their c_loc addresses).
  function elem_distance(p1, p2, esize) result(d)
    type(c_ptr), intent(in) :: p1, p2
    integer(c_size_t), intent(in) :: esize
    integer(c_int64_t) :: d
    integer(c_intptr_t) :: a1, a2
    a1 = transfer(p1, a1)
    a2 = transfer(p2, a2)
    d = int((a2 - a1) / int(esize, c_intptr_t), c_int64_t)
  end function elem_distance

  integer function do_bind(h, which, name, units, a) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    character(*), intent(in) :: name
    character(*), intent(in), optional :: units
    type(c_array), intent(in) :: a
    character(kind=c_char), allocatable, target :: ubuf(:)
    type(c_ptr) :: up
    integer :: i, n
    up = c_null_ptr
    if (present(units)) then
       n = len_trim(units)
       allocate (ubuf(n + 1))
       do i = 1, n
          ubuf(i) = units(i:i)
       end do
       ubuf(n + 1) = c_null_char
       up = c_loc(ubuf)
    end if
    rc = int(c_bind(h%ptr, int(which, c_int), cstr(name), up, a))
  end function do_bind

  !> Fills a c_array for a rank-2 array given the addresses of x(1,1), x(2,1)
  !> and x(1,2) (c_null_ptr where that extent is 1) and which dim holds samples.
  integer function layout2(shp, p11, p21, p12, esize, dtype, samples_dim, a) result(rc)
    integer, intent(in) :: shp(2), samples_dim
    type(c_ptr), intent(in) :: p11, p21, p12
    integer(c_size_t), intent(in) :: esize
    integer(c_int), intent(in) :: dtype
    type(c_array), intent(out) :: a
    integer(c_int64_t) :: s1, s2
    rc = MIMIC_OK
    s1 = 1
    if (c_associated(p21)) s1 = elem_distance(p11, p21, esize)
    s2 = int(shp(1), c_int64_t) * s1
    if (c_associated(p12)) s2 = elem_distance(p11, p12, esize)
    a%data = p11
    a%dtype = dtype
    select case (samples_dim)
    case (2)   ! x(size, n)
       a%size = shp(1)
       a%feature_stride = s1
       a%sample_stride = s2
    case (1)   ! x(n, size)
       a%size = shp(2)
       a%sample_stride = s1
       a%feature_stride = s2
    case default
       rc = MIMIC_EARG  ! checked here, before C: mimic_last_error does not say
    end select
  end function layout2

  integer function layout1(n, p1, p2, esize, dtype, samples_dim, a) result(rc)
    integer, intent(in) :: n, samples_dim
    type(c_ptr), intent(in) :: p1, p2
    integer(c_size_t), intent(in) :: esize
    integer(c_int), intent(in) :: dtype
    type(c_array), intent(out) :: a
    integer(c_int64_t) :: s
    rc = MIMIC_OK
    s = 1
    if (c_associated(p2)) s = elem_distance(p1, p2, esize)
    a%data = p1
    a%dtype = dtype
    select case (samples_dim)
    case (0)   ! x(size): one sample
       a%size = n
       a%feature_stride = s
       a%sample_stride = int(n, c_int64_t) * s
    case (1)   ! x(n): n samples of one feature
       a%size = 1
       a%sample_stride = s
       a%feature_stride = 1
    case default
       rc = MIMIC_EARG
    end select
  end function layout1

  ! ---- handles -----------------------------------------------------------------

  !> Opens a model file. precision: MIMIC_PRECISION_*; chunk: samples per
  !> chunk and thread (0: the engine's choice); threads: 0 = mimic's thread
  !> setting at each call; deterministic: outputs independent of n, chunk and
  !> threads. On failure h stays null; mimic_last_error(h) gives the message.
  integer function mimic_open(path, h, precision, chunk, threads, deterministic) result(rc)
    character(*), intent(in) :: path
    type(mimic_handle), intent(out) :: h
    integer, intent(in), optional :: precision, chunk, threads
    logical, intent(in), optional :: deterministic
    type(c_options) :: opt
    if (present(precision)) opt%precision = int(precision, c_int)
    if (present(chunk)) opt%chunk = int(chunk, c_int64_t)
    if (present(threads)) opt%num_threads = int(threads, c_int)
    if (present(deterministic)) then
       if (deterministic) opt%deterministic = 1
    end if
    rc = int(c_open(cstr(path), opt, h%ptr))
  end function mimic_open

  !> Releases the handle (a null one is fine) and nullifies it.
  integer function mimic_close(h) result(rc)
    type(mimic_handle), intent(inout) :: h
    rc = int(c_close(h%ptr))
    h%ptr = c_null_ptr
  end function mimic_close

  !> The message of the handle's last failed call. Without h, or for a null
  !> handle (a failed open), the calling thread's last mimic error: what went
  !> wrong in mimic_load_guard, whose failures are the guard file's.
  function mimic_last_error(h) result(msg)
    type(mimic_handle), intent(in), optional :: h
    character(:), allocatable :: msg
    if (present(h)) then
       msg = from_c(c_last_error(h%ptr))
    else
       msg = from_c(c_last_error(c_null_ptr))
    end if
  end function mimic_last_error

  integer function bind_f32_2(h, which, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    character(*), intent(in) :: name
    real(c_float), intent(in), target :: x(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    type(c_array) :: a
    type(c_ptr) :: p11, p21, p12
    integer :: sd
    sd = 2
    if (present(samples_dim)) sd = samples_dim
    p11 = c_null_ptr; p21 = c_null_ptr; p12 = c_null_ptr
    if (size(x) > 0) p11 = c_loc(x(1, 1))
    if (size(x, 1) > 1 .and. size(x, 2) > 0) p21 = c_loc(x(2, 1))
    if (size(x, 2) > 1 .and. size(x, 1) > 0) p12 = c_loc(x(1, 2))
    rc = layout2(shape(x), p11, p21, p12, 4_c_size_t, DT_F32, sd, a)
    if (rc == MIMIC_OK) rc = do_bind(h, which, name, units, a)
  end function bind_f32_2

  integer function bind_f64_2(h, which, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    character(*), intent(in) :: name
    real(c_double), intent(in), target :: x(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    type(c_array) :: a
    type(c_ptr) :: p11, p21, p12
    integer :: sd
    sd = 2
    if (present(samples_dim)) sd = samples_dim
    p11 = c_null_ptr; p21 = c_null_ptr; p12 = c_null_ptr
    if (size(x) > 0) p11 = c_loc(x(1, 1))
    if (size(x, 1) > 1 .and. size(x, 2) > 0) p21 = c_loc(x(2, 1))
    if (size(x, 2) > 1 .and. size(x, 1) > 0) p12 = c_loc(x(1, 2))
    rc = layout2(shape(x), p11, p21, p12, 8_c_size_t, DT_F64, sd, a)
    if (rc == MIMIC_OK) rc = do_bind(h, which, name, units, a)
  end function bind_f64_2

  integer function bind_f32_1(h, which, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    character(*), intent(in) :: name
    real(c_float), intent(in), target :: x(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    type(c_array) :: a
    type(c_ptr) :: p1, p2
    integer :: sd
    sd = 0
    if (present(samples_dim)) sd = samples_dim
    p1 = c_null_ptr; p2 = c_null_ptr
    if (size(x) > 0) p1 = c_loc(x(1))
    if (size(x) > 1) p2 = c_loc(x(2))
    rc = layout1(size(x), p1, p2, 4_c_size_t, DT_F32, sd, a)
    if (rc == MIMIC_OK) rc = do_bind(h, which, name, units, a)
  end function bind_f32_1

  integer function bind_f64_1(h, which, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    character(*), intent(in) :: name
    real(c_double), intent(in), target :: x(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    type(c_array) :: a
    type(c_ptr) :: p1, p2
    integer :: sd
    sd = 0
    if (present(samples_dim)) sd = samples_dim
    p1 = c_null_ptr; p2 = c_null_ptr
    if (size(x) > 0) p1 = c_loc(x(1))
    if (size(x) > 1) p2 = c_loc(x(2))
    rc = layout1(size(x), p1, p2, 8_c_size_t, DT_F64, sd, a)
    if (rc == MIMIC_OK) rc = do_bind(h, which, name, units, a)
  end function bind_f64_1

  integer function bind_in_f32_2(h, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_float), intent(in), target :: x(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f32_2(h, MIMIC_INPUT, name, x, samples_dim, units)
  end function bind_in_f32_2
  integer function bind_in_f64_2(h, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_double), intent(in), target :: x(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f64_2(h, MIMIC_INPUT, name, x, samples_dim, units)
  end function bind_in_f64_2
  integer function bind_in_f32_1(h, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_float), intent(in), target :: x(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f32_1(h, MIMIC_INPUT, name, x, samples_dim, units)
  end function bind_in_f32_1
  integer function bind_in_f64_1(h, name, x, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_double), intent(in), target :: x(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f64_1(h, MIMIC_INPUT, name, x, samples_dim, units)
  end function bind_in_f64_1

  ! Outputs are written by mimic_run: intent(inout) so the compiler knows.
  integer function bind_out_f32_2(h, name, y, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_float), intent(inout), target :: y(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f32_2(h, MIMIC_OUTPUT, name, y, samples_dim, units)
  end function bind_out_f32_2
  integer function bind_out_f64_2(h, name, y, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_double), intent(inout), target :: y(:, :)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f64_2(h, MIMIC_OUTPUT, name, y, samples_dim, units)
  end function bind_out_f64_2
  integer function bind_out_f32_1(h, name, y, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_float), intent(inout), target :: y(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f32_1(h, MIMIC_OUTPUT, name, y, samples_dim, units)
  end function bind_out_f32_1
  integer function bind_out_f64_1(h, name, y, samples_dim, units) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_double), intent(inout), target :: y(:)
    integer, intent(in), optional :: samples_dim
    character(*), intent(in), optional :: units
    rc = bind_f64_1(h, MIMIC_OUTPUT, name, y, samples_dim, units)
  end function bind_out_f64_1

  integer function run_i4(h, n) result(rc)
    type(mimic_handle), intent(in) :: h
    integer(c_int), intent(in) :: n
    rc = int(c_run(h%ptr, int(n, c_int64_t)))
  end function run_i4
  integer function run_i8(h, n) result(rc)
    type(mimic_handle), intent(in) :: h
    integer(c_int64_t), intent(in) :: n
    rc = int(c_run(h%ptr, n))
  end function run_i8

  !> Sets the host's reference kernel (see mimic_fallback_fn) and the user
  !> data passed back to it (e.g. c_loc of a derived-type variable with the
  !> TARGET attribute, or c_null_ptr). Pass no fn to remove it.
  integer function mimic_set_fallback(h, fn, ud) result(rc)
    type(mimic_handle), intent(in) :: h
    procedure(mimic_fallback_fn), optional :: fn
    type(c_ptr), intent(in), optional :: ud
    type(c_ptr) :: u
    type(c_funptr) :: f
    u = c_null_ptr
    if (present(ud)) u = ud
    f = c_null_funptr
    if (present(fn)) f = c_funloc(fn)
    rc = int(c_set_fallback(h%ptr, f, u))
  end function mimic_set_fallback

  !> Sets the host's conservation check (see mimic_residual_fn) with its
  !> tolerance. Pass no fn to remove it.
  integer function mimic_set_residual(h, fn, tol, ud) result(rc)
    type(mimic_handle), intent(in) :: h
    procedure(mimic_residual_fn), optional :: fn
    real(c_double), intent(in) :: tol
    type(c_ptr), intent(in), optional :: ud
    type(c_ptr) :: u
    type(c_funptr) :: f
    u = c_null_ptr
    if (present(ud)) u = ud
    f = c_null_funptr
    if (present(fn)) f = c_funloc(fn)
    rc = int(c_set_residual(h%ptr, f, u, tol))
  end function mimic_set_residual

  !> Adds an ensemble member: another model file with the same contract and
  !> encoders. Outputs become the members' mean.
  integer function mimic_add_member(h, path) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: path
    rc = int(c_add_member(h%ptr, cstr(path)))
  end function mimic_add_member

  !> Flags samples whose largest per-feature standard deviation across the
  !> members (encoded output units) exceeds max_spread.
  integer function mimic_set_spread_limit(h, max_spread) result(rc)
    type(mimic_handle), intent(in) :: h
    real(c_double), intent(in) :: max_spread
    rc = int(c_set_spread_limit(h%ptr, max_spread))
  end function mimic_set_spread_limit

  integer function mimic_get_stats(h, stats) result(rc)
    type(mimic_handle), intent(in) :: h
    type(mimic_stats), intent(out) :: stats
    rc = int(c_get_stats(h%ptr, stats))
  end function mimic_get_stats

  integer function mimic_reset_stats(h) result(rc)
    type(mimic_handle), intent(in) :: h
    rc = int(c_reset_stats(h%ptr))
  end function mimic_reset_stats

  !> Number of inputs (which = MIMIC_INPUT) or outputs of the contract.
  integer function mimic_num_vars(h, which, count) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which
    integer, intent(out) :: count
    integer(c_int) :: c
    c = 0
    rc = int(c_num_vars(h%ptr, int(which, c_int), c))
    count = int(c)
  end function mimic_num_vars

  !> Variable i (1-based) of the inputs or outputs: name, units, size.
  integer function mimic_var_info(h, which, i, name, units, size) result(rc)
    type(mimic_handle), intent(in) :: h
    integer, intent(in) :: which, i
    character(:), allocatable, intent(out) :: name, units
    integer(c_int64_t), intent(out) :: size
    type(c_ptr) :: pn, pu
    pn = c_null_ptr; pu = c_null_ptr
    size = 0
    rc = int(c_var_info(h%ptr, int(which, c_int), int(i - 1, c_int), pn, pu, size))
    name = from_c(pn)
    units = from_c(pu)
  end function mimic_var_info

  !> The model file's content hash ("sha256:..."), for the host's provenance.
  function mimic_model_hash(h) result(hash)
    type(mimic_handle), intent(in) :: h
    character(:), allocatable :: hash
    hash = from_c(c_model_hash(h%ptr))
  end function mimic_model_hash

  !> Bounds on a named output in its raw units (-huge/huge: no limit on finite
  !> values; +-Inf outputs are flagged MIMIC_FLAG_OUTPUT_NAN in any case).
  integer function mimic_set_output_bounds(h, name, lo, hi) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: name
    real(c_double), intent(in) :: lo, hi
    rc = int(c_set_output_bounds(h%ptr, cstr(name), lo, hi))
  end function mimic_set_output_bounds

  !> Loads a guard file (mimic/guard.h, written by mimic.guard in Lua) into the
  !> handle. A file that cannot be loaded is not the handle's error: its
  !> message is mimic_last_error() (no argument), not mimic_last_error(h).
  integer function mimic_load_guard(h, path) result(rc)
    type(mimic_handle), intent(in) :: h
    character(*), intent(in) :: path
    type(c_ptr) :: g
    g = c_guard_load(cstr(path))
    if (.not. c_associated(g)) then
       rc = int(c_errcode())
       return
    end if
    rc = int(c_set_guard(h%ptr, g))
    call c_guard_free(g)
  end function mimic_load_guard

  !> mimic's (and BLAS's) thread count for the calling thread; n <= 0: all cores.
  subroutine mimic_set_num_threads(n)
    integer, intent(in) :: n
    call c_set_num_threads(int(n, c_int))
  end subroutine mimic_set_num_threads
  integer function mimic_get_num_threads() result(n)
    n = int(c_get_num_threads())
  end function mimic_get_num_threads

  ! ---- profiler ------------------------------------------------------------------

  !> A new profiler (status MIMIC_ENOMEM if it cannot be allocated).
  integer function mimic_profiler_new(p) result(rc)
    type(mimic_profiler), intent(out) :: p
    p%ptr = c_profiler_new()
    rc = MIMIC_OK
    if (.not. c_associated(p%ptr)) rc = MIMIC_ENOMEM
  end function mimic_profiler_new

  subroutine mimic_profiler_free(p)
    type(mimic_profiler), intent(inout) :: p
    call c_profiler_free(p%ptr)
    p%ptr = c_null_ptr
  end subroutine mimic_profiler_free

  !> The id of the region called name (created on first use); negative on
  !> error. Look it up once, outside the time loop.
  integer function mimic_prof_region(p, name) result(id)
    type(mimic_profiler), intent(in) :: p
    character(*), intent(in) :: name
    id = int(c_prof_region(p%ptr, cstr(name)))
  end function mimic_prof_region

  integer function mimic_prof_begin(p, id) result(rc)
    type(mimic_profiler), intent(in) :: p
    integer, intent(in) :: id
    rc = int(c_prof_begin(p%ptr, int(id, c_int)))
  end function mimic_prof_begin

  !> Ends region id, which must be the innermost open one.
  integer function mimic_prof_end(p, id) result(rc)
    type(mimic_profiler), intent(in) :: p
    integer, intent(in) :: id
    rc = int(c_prof_end(p%ptr, int(id, c_int)))
  end function mimic_prof_end

  integer function mimic_prof_reset(p) result(rc)
    type(mimic_profiler), intent(in) :: p
    rc = int(c_prof_reset(p%ptr))
  end function mimic_prof_reset

  integer function mimic_prof_count(p) result(n)
    type(mimic_profiler), intent(in) :: p
    n = int(c_prof_count(p%ptr))
  end function mimic_prof_count

  !> Region id's name, calls, inclusive and exclusive seconds.
  integer function mimic_prof_get(p, id, e) result(rc)
    type(mimic_profiler), intent(in) :: p
    integer, intent(in) :: id
    type(mimic_prof_entry), intent(out) :: e
    type(c_prof_entry) :: ce
    ce%name = c_null_ptr
    ce%calls = 0
    ce%total = 0
    ce%self = 0
    rc = int(c_prof_get(p%ptr, int(id, c_int), ce))
    e%name = from_c(ce%name)
    e%calls = ce%calls
    e%total = ce%total
    e%self = ce%self
  end function mimic_prof_get

  !> Wall seconds since the profiler was created or reset.
  function mimic_prof_elapsed(p) result(t)
    type(mimic_profiler), intent(in) :: p
    real(c_double) :: t
    t = c_prof_elapsed(p%ptr)
  end function mimic_prof_elapsed

  !> Writes a table of the regions to unit: calls, total and self seconds,
  !> share of the elapsed time, and the Amdahl bound on the whole run's
  !> speed-up if the region were replaced by a surrogate costing cost_ratio
  !> of it (default 0.1, i.e. ten times faster).
  subroutine mimic_prof_report(p, unit, cost_ratio)
    type(mimic_profiler), intent(in) :: p
    integer, intent(in) :: unit
    real(c_double), intent(in), optional :: cost_ratio
    type(mimic_prof_entry) :: e
    real(c_double) :: el, f, c
    integer :: i, rc
    c = 0.1_c_double
    if (present(cost_ratio)) c = cost_ratio
    el = mimic_prof_elapsed(p)
    write (unit, '(a24,1x,a10,3(1x,a12),1x,a10)') "region", "calls", "total [s]", "self [s]", "share", "bound"
    do i = 0, mimic_prof_count(p) - 1
       rc = mimic_prof_get(p, i, e)
       if (rc /= MIMIC_OK) cycle
       f = 0
       if (el > 0) f = e%total / el
       write (unit, '(a24,1x,i10,3(1x,es12.4),1x,f10.3)') e%name, e%calls, e%total, e%self, f, &
            mimic_amdahl_bound(f, c)
    end do
    write (unit, '(a,es12.4,a)') "elapsed ", el, " s"
  end subroutine mimic_prof_report

  !> Whole-run speed-up bound 1/((1-f) + f c) for a region of fraction f
  !> replaced by something costing c times its time.
  function mimic_amdahl_bound(fraction, cost_ratio) result(s)
    real(c_double), intent(in) :: fraction, cost_ratio
    real(c_double) :: s
    s = c_amdahl_bound(fraction, cost_ratio)
  end function mimic_amdahl_bound

  !> Runs until one-off costs are repaid (huge if nothing is saved).
  function mimic_break_even_runs(run_seconds, speedup, oneoff_seconds) result(r)
    real(c_double), intent(in) :: run_seconds, speedup, oneoff_seconds
    real(c_double) :: r
    r = c_break_even_runs(run_seconds, speedup, oneoff_seconds)
  end function mimic_break_even_runs

end module mimic
