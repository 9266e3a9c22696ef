! The Fortran module (fortran/mimic.f90) against the embedding API: a model
! file written by gen_model.lua (argument 1: its directory, with data.txt: the
! raw inputs and the outputs of the in-memory Lua pipeline) is run on host
! arrays in both layouts, both kinds, sections and single samples; errors,
! the fallback callback, stats, contract queries and the profiler.
! Built three times by the Makefile: default kinds, -fdefault-real-8, and
! -fdefault-real-8 -fdefault-integer-8.
module fallback_state
  use, intrinsic :: iso_c_binding
  use mimic
  implicit none
  real(c_double), allocatable, target :: heat(:, :), flux(:, :)
  integer(c_int64_t), allocatable :: seen(:)
contains
  ! The host's reference kernel: marks the samples it recomputes.
  function fallback(ud, idx, count) bind(c) result(rc)
    type(c_ptr), value :: ud
    integer(c_int64_t), value :: count
    integer(c_int64_t), intent(in) :: idx(count)
    integer(c_int) :: rc
    integer(c_int), pointer :: ncalls
    integer(c_int64_t) :: k
    call c_f_pointer(ud, ncalls)
    ncalls = ncalls + 1_c_int
    seen = [seen, idx]
    do k = 1, count
       heat(:, idx(k) + 1) = -1
       flux(1, idx(k) + 1) = -2
    end do
    rc = 0
  end function fallback
end module fallback_state

program test_fortran
  use, intrinsic :: iso_c_binding
  use mimic
  use fallback_state
  implicit none
  character(512) :: dir
  integer :: n, i, u, st, nfail
  real(c_double), allocatable :: x(:, :), y(:, :)
  type(mimic_handle) :: h

  nfail = 0
  call get_command_argument(1, dir)
  open (newunit=u, file=trim(dir)//"/data.txt", status="old", action="read")
  read (u, *) n
  allocate (x(5, n), y(3, n))
  do i = 1, n
     read (u, *) x(:, i)
  end do
  do i = 1, n
     read (u, *) y(:, i)
  end do
  close (u)

  st = mimic_open(trim(dir)//"/model.h5", h)
  if (st /= MIMIC_OK) then
     print '(a)', "not ok - open"
     write (0, '(a)') mimic_last_error(h)
     stop 1
  end if

  call features_first()
  call samples_first()
  call sections_and_default_real()
  call single_sample()
  call errors()
  call contract()
  call with_fallback()
  call profiler()
  st = mimic_close(h)
  call report("close", st == MIMIC_OK .and. .not. c_associated(h%ptr) .and. mimic_run(h, n) == MIMIC_EARG)
  if (nfail > 0) stop 1

contains

  subroutine report(name, ok)
    character(*), intent(in) :: name
    logical, intent(in) :: ok
    if (ok) then
       print '(2a)', "ok - ", name
    else
       print '(2a)', "not ok - ", name
       nfail = nfail + 1
    end if
  end subroutine report

  logical function close_to(got, want, tol)
    real(c_double), intent(in) :: got(:, :), want(:, :)
    real(c_double), intent(in) :: tol
    close_to = all(abs(got - want) <= tol * (1 + abs(want)))
    if (.not. close_to) write (0, '(a,es10.3)') "  max difference ", maxval(abs(got - want))
  end function close_to

  ! t(3, n), q(2, n), heat(2, n), flux(1, n): x(size, n), no copy, float64.
  subroutine features_first()
    real(c_double), allocatable, target :: t(:, :), q(:, :), ht(:, :), fl(:, :)
    logical :: ok
    allocate (t, source=x(1:3, :))
    allocate (q, source=x(4:5, :))
    allocate (ht(2, n), fl(1, n))
    ht = 0
    fl = 0
    ok = mimic_bind_input(h, "t", t) == MIMIC_OK
    ok = ok .and. mimic_bind_input(h, "q", q, units="kg/kg") == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "heat", ht) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "flux", fl, samples_dim=2) == MIMIC_OK
    ok = ok .and. mimic_run(h, n) == MIMIC_OK
    if (.not. ok) write (0, '(a)') mimic_last_error(h)
    ok = ok .and. close_to(ht, y(1:2, :), 1e-9_c_double) .and. close_to(fl, y(3:3, :), 1e-9_c_double)
    ! inputs are never written
    ok = ok .and. all(t == x(1:3, :))
    call report("features_first_f64", ok)
  end subroutine features_first

  ! t(n, 3) float32, q(n, 2) float64, heat(n, 2) float32, flux(n) float64:
  ! samples_dim = 1, the strided gather.
  subroutine samples_first()
    real(c_float), allocatable, target :: t(:, :), ht(:, :)
    real(c_double), allocatable, target :: q(:, :), fl(:)
    logical :: ok
    allocate (t, source=real(transpose(x(1:3, :)), c_float))
    allocate (q, source=transpose(x(4:5, :)))
    allocate (ht(n, 2), fl(n))
    ht = 0
    fl = 0
    ok = mimic_bind_input(h, "t", t, samples_dim=1) == MIMIC_OK
    ok = ok .and. mimic_bind_input(h, "q", q, samples_dim=1) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "heat", ht, samples_dim=1) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "flux", fl, samples_dim=1) == MIMIC_OK
    ok = ok .and. mimic_run(h, int(n, c_int64_t)) == MIMIC_OK
    if (.not. ok) write (0, '(a)') mimic_last_error(h)
    ! float32 inputs: relative rounding 6e-8 of values near 260 before standardising
    ok = ok .and. close_to(real(transpose(ht), c_double), y(1:2, :), 1e-4_c_double)
    ok = ok .and. close_to(reshape(fl, [1, n]), y(3:3, :), 1e-4_c_double)
    call report("samples_first_mixed_kinds", ok)
  end subroutine samples_first

  ! Every other column of a bigger array (strides from the memory layout), and
  ! arrays of default real kind (float32, or float64 under -fdefault-real-8).
  subroutine sections_and_default_real()
    real, allocatable, target :: big(:, :), q(:, :), ht(:, :), fl(:, :)
    real(c_double) :: tol
    logical :: ok
    allocate (big(4, 2 * n))
    big = -999
    big(1:3, 1:2 * n:2) = real(x(1:3, :))
    allocate (q, source=real(x(4:5, :)))
    allocate (ht(3, 2 * n), fl(1, n))
    ht = 7
    fl = 0
    ok = mimic_bind_input(h, "t", big(1:3, 1:2 * n:2)) == MIMIC_OK
    ok = ok .and. mimic_bind_input(h, "q", q) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "heat", ht(2:3, 2:2 * n:2)) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "flux", fl) == MIMIC_OK
    ok = ok .and. mimic_run(h, n) == MIMIC_OK
    if (.not. ok) write (0, '(a)') mimic_last_error(h)
    tol = 1e-4_c_double
    if (kind(1.0) == c_double) tol = 1e-9_c_double
    ok = ok .and. close_to(real(ht(2:3, 2:2 * n:2), c_double), y(1:2, :), tol)
    ok = ok .and. close_to(real(fl, c_double), y(3:3, :), tol)
    ok = ok .and. all(ht(1, :) == 7) .and. all(ht(2:3, 1:2 * n:2) == 7)  ! nothing else written
    call report("sections_and_default_real", ok)
  end subroutine sections_and_default_real

  ! Rank-1 arrays: one sample.
  subroutine single_sample()
    real(c_double), target :: t(3), q(2), ht(2), fl(1)
    logical :: ok
    t = x(1:3, 4)
    q = x(4:5, 4)
    ok = mimic_bind_input(h, "t", t) == MIMIC_OK
    ok = ok .and. mimic_bind_input(h, "q", q) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "heat", ht) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "flux", fl) == MIMIC_OK
    ok = ok .and. mimic_run(h, 1) == MIMIC_OK
    if (.not. ok) write (0, '(a)') mimic_last_error(h)
    ok = ok .and. close_to(reshape([ht, fl], [3, 1]), y(:, 4:4), 1e-9_c_double)
    call report("single_sample_rank1", ok)
  end subroutine single_sample

  subroutine errors()
    real(c_double), allocatable, target :: t(:, :)
    type(mimic_handle) :: h2
    logical :: ok
    allocate (t(4, n))
    t = 0
    st = mimic_bind_input(h, "temperature", t(1:3, :))
    ok = st == MIMIC_EARG .and. index(mimic_last_error(h), "temperature") > 0
    if (.not. ok) write (0, '(i0,1x,a)') st, mimic_last_error(h)
    call report("error_unknown_name", ok)
    st = mimic_bind_input(h, "t", t)
    ok = st == MIMIC_EARG .and. index(mimic_last_error(h), "4") > 0 .and. index(mimic_last_error(h), "3") > 0
    if (.not. ok) write (0, '(i0,1x,a)') st, mimic_last_error(h)
    call report("error_wrong_size", ok)
    st = mimic_bind_input(h, "q", t(1:2, :), units="K")
    ok = st == MIMIC_EARG .and. index(mimic_last_error(h), "kg/kg") > 0
    call report("error_wrong_units", ok)
    ok = mimic_bind_input(h, "t", t(1:3, :), samples_dim=3) == MIMIC_EARG
    call report("error_samples_dim", ok)
    st = mimic_open(trim(dir)//"/no_such_model.h5", h2)
    ok = st /= MIMIC_OK .and. .not. c_associated(h2%ptr) .and. index(mimic_last_error(h2), "no_such_model.h5") > 0
    if (.not. ok) write (0, '(i0,1x,a)') st, mimic_last_error(h2)
    call report("error_missing_file", ok)
    ! a file that is not a guard: the message is the thread's (the handle's stays its own)
    st = mimic_load_guard(h, trim(dir)//"/model.h5")
    ok = st == MIMIC_EIO .and. index(mimic_last_error(), "not a guard file") > 0 &
         .and. index(mimic_last_error(h), "not a guard file") == 0
    if (.not. ok) write (0, '(i0,1x,a)') st, mimic_last_error()
    call report("error_guard_file_message", ok)
  end subroutine errors

  subroutine contract()
    character(:), allocatable :: name, units, hash
    integer(c_int64_t) :: sz
    integer :: cnt
    logical :: ok
    ok = mimic_num_vars(h, MIMIC_INPUT, cnt) == MIMIC_OK .and. cnt == 2
    ok = ok .and. mimic_var_info(h, MIMIC_INPUT, 2, name, units, sz) == MIMIC_OK
    ok = ok .and. name == "q" .and. units == "kg/kg" .and. sz == 2
    ok = ok .and. mimic_var_info(h, MIMIC_OUTPUT, 2, name, units, sz) == MIMIC_OK
    ok = ok .and. name == "flux" .and. units == "W/m2" .and. sz == 1
    ok = ok .and. mimic_num_vars(h, MIMIC_OUTPUT, cnt) == MIMIC_OK .and. cnt == 2
    hash = mimic_model_hash(h)
    ok = ok .and. len(hash) == 71
    if (ok) ok = hash(1:7) == "sha256:"
    call report("contract_queries", ok)
  end subroutine contract

  ! Bounds on flux flag the samples above the middle of its range; the
  ! fallback recomputes exactly those (0-based indices), once per run.
  subroutine with_fallback()
    real(c_double), allocatable, target :: t(:, :), q(:, :)
    integer(c_int), target :: ncalls
    integer(c_int64_t), allocatable :: want(:)
    type(mimic_stats) :: s
    real(c_double) :: hi
    integer :: j
    logical :: ok
    allocate (t, source=x(1:3, :))
    allocate (q, source=x(4:5, :))
    allocate (heat(2, n), flux(1, n), seen(0))
    ncalls = 0
    hi = (minval(y(3, :)) + maxval(y(3, :))) / 2
    want = pack([(int(j - 1, c_int64_t), j = 1, n)], y(3, :) > hi)
    ok = mimic_reset_stats(h) == MIMIC_OK
    ok = ok .and. mimic_bind_input(h, "t", t) == MIMIC_OK .and. mimic_bind_input(h, "q", q) == MIMIC_OK
    ok = ok .and. mimic_bind_output(h, "heat", heat) == MIMIC_OK .and. mimic_bind_output(h, "flux", flux) == MIMIC_OK
    ok = ok .and. mimic_set_output_bounds(h, "flux", -huge(1.0_c_double), hi) == MIMIC_OK
    ok = ok .and. mimic_set_fallback(h, fallback, c_loc(ncalls)) == MIMIC_OK
    ok = ok .and. mimic_run(h, n) == MIMIC_OK
    if (.not. ok) write (0, '(a)') mimic_last_error(h)
    ok = ok .and. ncalls == 1 .and. size(want) > 0 .and. size(want) < n
    ok = ok .and. size(seen) == size(want)
    if (ok) ok = all(seen == want)
    do j = 1, n
       if (y(3, j) > hi) then
          ok = ok .and. all(heat(:, j) == -1) .and. flux(1, j) == -2
       else
          ok = ok .and. close_to(heat(:, j:j), y(1:2, j:j), 1e-9_c_double) .and. close_to(flux(:, j:j), y(3:3, j:j), 1e-9_c_double)
       end if
    end do
    ok = ok .and. mimic_get_stats(h, s) == MIMIC_OK
    ok = ok .and. s%calls == 1 .and. s%samples == n .and. s%fallback == size(want) &
         .and. s%surrogate == n - size(want) .and. s%flagged(5) == size(want) .and. s%seconds >= 0
    if (.not. ok) write (0, '(a,7i6)') "  stats calls samples surrogate fallback flagged(5) / want ", &
         s%calls, s%samples, s%surrogate, s%fallback, s%flagged(5), size(want), ncalls
    ! removing the fallback: flagged samples keep the surrogate's outputs
    ok = ok .and. mimic_set_fallback(h) == MIMIC_OK .and. mimic_run(h, n) == MIMIC_OK
    ok = ok .and. ncalls == 1 .and. close_to(flux, y(3:3, :), 1e-9_c_double)
    call report("fallback_callback_and_stats", ok)
  end subroutine with_fallback

  subroutine profiler()
    type(mimic_profiler) :: p
    type(mimic_prof_entry) :: e
    integer :: outer, inner, k
    logical :: ok
    ok = mimic_profiler_new(p) == MIMIC_OK
    outer = mimic_prof_region(p, "physics")
    inner = mimic_prof_region(p, "radiation")
    ok = ok .and. outer == 0 .and. inner == 1 .and. mimic_prof_region(p, "physics") == 0
    do k = 1, 3
       ok = ok .and. mimic_prof_begin(p, outer) == MIMIC_OK
       ok = ok .and. mimic_prof_begin(p, inner) == MIMIC_OK
       ok = ok .and. mimic_prof_end(p, inner) == MIMIC_OK
       ok = ok .and. mimic_prof_end(p, outer) == MIMIC_OK
    end do
    ok = ok .and. mimic_prof_begin(p, outer) == MIMIC_OK .and. mimic_prof_end(p, inner) == MIMIC_ESTATE
    ok = ok .and. mimic_prof_end(p, outer) == MIMIC_OK
    ok = ok .and. mimic_prof_count(p) == 2
    ok = ok .and. mimic_prof_get(p, inner, e) == MIMIC_OK
    ok = ok .and. e%name == "radiation" .and. e%calls == 3 .and. e%total >= 0 .and. e%self <= e%total
    ok = ok .and. mimic_prof_get(p, outer, e) == MIMIC_OK .and. e%calls == 4
    ok = ok .and. mimic_prof_elapsed(p) >= e%total
    ok = ok .and. abs(mimic_amdahl_bound(0.5_c_double, 0.0_c_double) - 2) < 1e-12_c_double
    ok = ok .and. abs(mimic_amdahl_bound(0.8_c_double, 0.1_c_double) - 1 / (0.2_c_double + 0.08_c_double)) < 1e-12_c_double
    ok = ok .and. abs(mimic_break_even_runs(100.0_c_double, 2.0_c_double, 500.0_c_double) - 10) < 1e-9_c_double
    call mimic_profiler_free(p)
    ok = ok .and. .not. c_associated(p%ptr)
    call report("profiler", ok)
  end subroutine profiler

end program test_fortran
