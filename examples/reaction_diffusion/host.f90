! The reaction-diffusion host of host.c in Fortran (docs/embedding.md), calling
! the surrogate the C pipeline trained through the shipped module
! fortran/mimic.f90, with the Fortran reference kernel as the fallback.
!
!   rd_host_f run MODEL [--guard FILE] [--cells N] [--steps N] [--substeps N]
!             [--seed N] [--hotspot KELVIN] [--threads N] [--dump FILE] [--no-fallback]
!   rd_host_f profile [same options]
!
! The state lives as the array of samples mimic reads in place: x(2, ncells)
! with x(1, :) the temperature [K] and x(2, :) the fuel mass fraction [1], and
! the kernel's outputs rate(2, ncells) (heat_release [K/s], fuel_rate [1/s]).
! Each contract variable is bound to its row section, x(1:1, :) etc.: one
! feature per sample, samples 2 elements apart. The arithmetic repeats host.c
! operation for operation, so from the same initial state both hosts give
! the same numbers (tests/examples/run compares the final states).
module rd_host
  use, intrinsic :: iso_c_binding
  use mimic
  implicit none
  private
  public :: params, host_t, host_init, host_free, initial_state, simulate, energy, fallback, dp

  integer, parameter :: dp = c_double

  type :: params
     integer :: n = 2048, steps = 200, substeps = 40
     real(dp) :: length = 0.1_dp, diff = 2e-5_dp, a = 5e5_dp, ta = 10000.0_dp, q = 1500.0_dp, &
          t0 = 300.0_dp, dt = 1.2e-3_dp, dx = 0.1_dp / 2048
  end type params

  type :: host_t
     type(params) :: p
     real(dp), allocatable :: x(:, :)     ! x(2, n): temperature, fuel
     real(dp), allocatable :: rate(:, :)  ! rate(2, n): heat_release, fuel_rate
     real(dp) :: r = 0, gamma = 0
     real(dp), allocatable :: cp(:), bb(:), z(:), work(:), col(:)
     type(mimic_profiler) :: prof
     integer :: r_step = -1, r_diff = -1, r_source = -1
     real(dp) :: hot = 0, injected = 0
  end type host_t

contains

  !> The reference kernel (host.c: kernel): mean reaction rates over dt.
  subroutine kernel(p, temp, fuel, rate_t, rate_y)
    type(params), intent(in) :: p
    real(dp), intent(in) :: temp, fuel
    real(dp), intent(out) :: rate_t, rate_y
    real(dp) :: h, t, y, to, yo, e, w, f1, f2, wy, wt, j11, j12, j21, j22, det, dy, dtemp
    integer :: s, it
    h = p%dt / p%substeps
    t = temp
    y = fuel
    do s = 1, p%substeps
       to = t
       yo = y
       do it = 1, 30
          e = exp(-p%ta / t)
          w = p%a * y * e
          f1 = y - yo + h * w
          f2 = t - to - p%q * h * w
          wy = p%a * e
          wt = w * p%ta / (t * t)
          j11 = 1.0_dp + h * wy
          j12 = h * wt
          j21 = -p%q * h * wy
          j22 = 1.0_dp - p%q * h * wt
          det = j11 * j22 - j12 * j21
          dy = (f1 * j22 - f2 * j12) / det
          dtemp = (j11 * f2 - j21 * f1) / det
          y = y - dy
          t = t - dtemp
          if (y < 0.0_dp) then
             y = 0.0_dp
             t = to + p%q * yo
          end if
          if (abs(dy) < 1e-12_dp .and. abs(dtemp) < 1e-9_dp) exit
       end do
    end do
    rate_t = (t - temp) / p%dt
    rate_y = (y - fuel) / p%dt
  end subroutine kernel

  !> Thomas sweep with the precomputed factors (host.c: tridiag).
  subroutine tridiag(n, r, bb, cp, rhs, x)
    integer, intent(in) :: n
    real(dp), intent(in) :: r, bb(n), cp(n), rhs(n)
    real(dp), intent(out) :: x(n)
    real(dp) :: a, m
    integer :: i
    a = -r
    x(1) = rhs(1) / bb(1)
    do i = 2, n
       m = bb(i) - a * cp(i - 1)
       x(i) = (rhs(i) - a * x(i - 1)) / m
    end do
    do i = n - 1, 1, -1
       x(i) = x(i) - cp(i) * x(i + 1)
    end do
  end subroutine tridiag

  !> Backward-Euler diffusion of field f (row f of x) on the periodic grid.
  subroutine diffuse(hs, f)
    type(host_t), intent(inout) :: hs
    integer, intent(in) :: f
    real(dp) :: beta, fact
    integer :: n
    n = hs%p%n
    beta = -hs%r
    hs%col = hs%x(f, :)
    call tridiag(n, hs%r, hs%bb, hs%cp, hs%col, hs%work)
    fact = (hs%work(1) + beta * hs%work(n) / hs%gamma) / (1.0_dp + hs%z(1) + beta * hs%z(n) / hs%gamma)
    hs%x(f, :) = hs%work - fact * hs%z
  end subroutine diffuse

  integer function host_init(hs, p) result(rc)
    type(host_t), intent(inout) :: hs
    type(params), intent(in) :: p
    real(dp) :: b, a, c
    integer :: i, n
    hs%p = p
    n = p%n
    allocate (hs%x(2, n), hs%rate(2, n), hs%cp(n), hs%bb(n), hs%z(n), hs%work(n), hs%col(n))
    hs%rate = 0
    hs%r = p%diff * p%dt / (p%dx * p%dx)
    b = 1.0_dp + 2.0_dp * hs%r
    a = -hs%r
    c = -hs%r
    hs%gamma = -b
    hs%bb = b
    hs%bb(1) = b - hs%gamma
    hs%bb(n) = b - a * c / hs%gamma
    hs%cp(1) = c / hs%bb(1)
    do i = 2, n
       hs%cp(i) = c / (hs%bb(i) - a * hs%cp(i - 1))
    end do
    hs%col = 0
    hs%col(1) = hs%gamma
    hs%col(n) = a
    call tridiag(n, hs%r, hs%bb, hs%cp, hs%col, hs%z)
    rc = mimic_profiler_new(hs%prof)
    if (rc /= MIMIC_OK) return
    hs%r_step = mimic_prof_region(hs%prof, "step")
    hs%r_diff = mimic_prof_region(hs%prof, "diffusion")
    hs%r_source = mimic_prof_region(hs%prof, "source")
    if (hs%r_step < 0 .or. hs%r_diff < 0 .or. hs%r_source < 0) rc = MIMIC_ENOMEM
  end function host_init

  subroutine host_free(hs)
    type(host_t), intent(inout) :: hs
    call mimic_profiler_free(hs%prof)
    deallocate (hs%x, hs%rate, hs%cp, hs%bb, hs%z, hs%work, hs%col)
  end subroutine host_free

  !> host.c's hash01: 32-bit unsigned arithmetic, emulated in 64-bit integers.
  real(dp) function hash01(seed, k)
    integer, intent(in) :: seed, k
    integer(c_int64_t), parameter :: m32 = 4294967295_c_int64_t
    integer(c_int64_t) :: v
    v = iand(int(seed, c_int64_t) * 2654435761_c_int64_t + int(k, c_int64_t) * 40503_c_int64_t + 12345_c_int64_t, m32)
    v = ieor(v, shiftr(v, 13))
    v = iand(v * 1274126177_c_int64_t, m32)
    v = ieor(v, shiftr(v, 16))
    hash01 = real(mod(v, 100000_c_int64_t), dp) / 100000.0_dp
  end function hash01

  subroutine initial_state(p, seed, x)
    type(params), intent(in) :: p
    integer, intent(in) :: seed
    real(dp), intent(out) :: x(:, :)
    real(dp), parameter :: pi = 3.14159265358979323846_dp
    real(dp) :: ph1, ph2, xc, centre, width, peak, bump, burnt
    integer :: i, k
    ph1 = 2.0_dp * pi * hash01(seed, 1)
    ph2 = 2.0_dp * pi * hash01(seed, 2)
    do i = 1, p%n
       xc = ((i - 1) + 0.5_dp) / p%n
       x(2, i) = 0.75_dp + 0.12_dp * sin(2.0_dp * pi * xc + ph1) + 0.08_dp * sin(6.0_dp * pi * xc + ph2)
       x(1, i) = p%t0
    end do
    do k = 0, 3
       centre = (k + hash01(seed, 10 + k)) / 4.0_dp
       width = 0.01_dp + 0.01_dp * hash01(seed, 20 + k)
       peak = 1300.0_dp + 400.0_dp * hash01(seed, 30 + k)
       do i = 1, p%n
          xc = ((i - 1) + 0.5_dp) / p%n - centre
          xc = xc - floor(xc + 0.5_dp)
          bump = (peak - p%t0) * exp(-(xc * xc) / (width * width))
          burnt = min(bump / p%q, x(2, i))
          x(1, i) = x(1, i) + burnt * p%q
          x(2, i) = x(2, i) - burnt
       end do
    end do
  end subroutine initial_state

  real(dp) function energy(p, x)
    type(params), intent(in) :: p
    real(dp), intent(in) :: x(:, :)
    integer :: i
    energy = 0
    do i = 1, p%n
       energy = energy + (x(1, i) + p%q * x(2, i))
    end do
    energy = energy * p%dx
  end function energy

  !> mimic's fallback: the reference kernel for the flagged samples idx
  !> (0-based), from the bound inputs x into the bound outputs rate.
  function fallback(ud, idx, count) bind(c) result(rc)
    type(c_ptr), value :: ud
    integer(c_int64_t), value :: count
    integer(c_int64_t), intent(in) :: idx(count)
    integer(c_int) :: rc
    type(host_t), pointer :: hs
    integer(c_int64_t) :: k, i
    call c_f_pointer(ud, hs)
    do k = 1, count
       i = idx(k) + 1
       call kernel(hs%p, hs%x(1, i), hs%x(2, i), hs%rate(1, i), hs%rate(2, i))
    end do
    rc = 0
  end function fallback

  !> One run: the reference kernel (model not associated) or the surrogate.
  integer function simulate(hs, h) result(rc)
    type(host_t), intent(inout) :: hs
    type(mimic_handle), intent(in) :: h
    integer :: s, i
    real(dp) :: added
    rc = MIMIC_OK
    do s = 0, hs%p%steps - 1
       if (hs%hot > 0 .and. s == hs%p%steps / 2) then
          added = 0
          do i = hs%p%n / 3 + 1, hs%p%n / 3 + 8
             added = added + (hs%hot - hs%x(1, i)) * hs%p%dx
             hs%x(1, i) = hs%hot
          end do
          hs%injected = hs%injected + added
       end if
       rc = mimic_prof_begin(hs%prof, hs%r_step)
       if (rc == MIMIC_OK) rc = mimic_prof_begin(hs%prof, hs%r_diff)
       if (rc /= MIMIC_OK) return
       call diffuse(hs, 1)
       call diffuse(hs, 2)
       rc = mimic_prof_end(hs%prof, hs%r_diff)
       if (rc == MIMIC_OK) rc = mimic_prof_begin(hs%prof, hs%r_source)
       if (rc /= MIMIC_OK) return
       if (c_associated(h%ptr)) then
          rc = mimic_run(h, hs%p%n)
          if (rc /= MIMIC_OK) then
             write (0, '(a,i0,2a)') "host: mimic_run failed at step ", s, ": ", mimic_last_error(h)
             return
          end if
       else
          do i = 1, hs%p%n
             call kernel(hs%p, hs%x(1, i), hs%x(2, i), hs%rate(1, i), hs%rate(2, i))
          end do
       end if
       do i = 1, hs%p%n
          hs%x(1, i) = hs%x(1, i) + hs%p%dt * hs%rate(1, i)
          hs%x(2, i) = hs%x(2, i) + hs%p%dt * hs%rate(2, i)
       end do
       rc = mimic_prof_end(hs%prof, hs%r_source)
       if (rc == MIMIC_OK) rc = mimic_prof_end(hs%prof, hs%r_step)
       if (rc /= MIMIC_OK) return
    end do
  end function simulate

end module rd_host

program host_f
  use rd_host
  use mimic
  implicit none
  type(params) :: p
  type(host_t), target :: ref, hyb
  type(mimic_handle) :: h, none
  type(mimic_stats) :: st
  type(mimic_prof_entry) :: e
  character(len=4096) :: mode, arg, model, guard, dump, val
  integer :: i, nargs, seed, threads, rc, which, nv, unit, k
  logical :: use_fallback, finite
  real(dp) :: hot, e0, t_ref, t_hyb, src_r, src_h, f, c, drift_r, drift_h, se_t, se_y, mx_t, mx_y, d1, d2
  real(dp) :: burnt_r, burnt_h, rmse_t, rmse_y
  integer(c_int64_t) :: vsize
  character(:), allocatable :: vname, vunits
  character(len=16), parameter :: why(7) = [character(len=16) :: "input NaN", "range", "distance", &
       "output NaN", "output bounds", "residual", "spread"]
  character(len=512) :: flags_text

  seed = 101
  threads = 1
  hot = 0
  use_fallback = .true.
  model = ""
  guard = ""
  dump = ""
  nargs = command_argument_count()
  if (nargs < 1) call usage()
  call get_command_argument(1, mode)
  i = 2
  do while (i <= nargs)
     call get_command_argument(i, arg)
     if (arg(1:1) /= "-") then
        model = arg
        i = i + 1
        cycle
     end if
     if (arg == "--no-fallback") then
        use_fallback = .false.
        i = i + 1
        cycle
     end if
     if (i == nargs) call usage()
     call get_command_argument(i + 1, val)
     select case (trim(arg))
     case ("--cells")
        read (val, *) p%n
     case ("--steps")
        read (val, *) p%steps
     case ("--substeps")
        read (val, *) p%substeps
     case ("--seed")
        read (val, *) seed
     case ("--threads")
        read (val, *) threads
     case ("--hotspot")
        read (val, *) hot
     case ("--guard")
        guard = val
     case ("--dump")
        dump = val
     case default
        call usage()
     end select
     i = i + 2
  end do
  if (p%n < 16 .or. p%steps < 1 .or. p%substeps < 1) call usage()
  p%dx = p%length / p%n

  if (host_init(ref, p) /= MIMIC_OK) stop "host: cannot allocate the profiler"
  ref%hot = hot
  call initial_state(p, seed, ref%x)

  if (trim(mode) == "profile") then
     rc = mimic_prof_reset(ref%prof)
     if (simulate(ref, none) /= MIMIC_OK) stop 1
     call mimic_prof_report(ref%prof, 6)
     call host_free(ref)
     stop
  end if
  if (trim(mode) /= "run" .or. len_trim(model) == 0) call usage()

  if (host_init(hyb, p) /= MIMIC_OK) stop "host: cannot allocate the profiler"
  hyb%hot = hot
  hyb%x = ref%x
  e0 = energy(p, ref%x)

  ! reference
  call cpu_clock(t_ref)
  if (simulate(ref, none) /= MIMIC_OK) stop 1
  call cpu_clock(d1)
  t_ref = d1 - t_ref

  ! the surrogate: open, check the contract, bind, guard, bounds, fallback
  rc = mimic_open(trim(model), h, threads=threads, deterministic=.true.)
  if (rc /= MIMIC_OK) then
     write (0, '(2a)') "host: cannot open the model: ", mimic_last_error(h)
     stop 1
  end if
  write (*, '(4a)') "model ", trim(model), " ", mimic_model_hash(h)
  do which = MIMIC_INPUT, MIMIC_OUTPUT
     call check(mimic_num_vars(h, which, nv), "mimic_num_vars")
     do k = 1, nv
        call check(mimic_var_info(h, which, k, vname, vunits, vsize), "mimic_var_info")
        if (which == MIMIC_INPUT) then
           write (*, '(a,i0,5a,i0)') "  input  ", k - 1, ": ", vname, " [", vunits, "] x ", vsize
        else
           write (*, '(a,i0,5a,i0)') "  output ", k - 1, ": ", vname, " [", vunits, "] x ", vsize
        end if
     end do
  end do
  ! x(2, n) and rate(2, n), one row section per contract variable
  call check(mimic_bind_input(h, "temperature", hyb%x(1:1, :), units="K"), "mimic_bind(temperature)")
  call check(mimic_bind_input(h, "fuel", hyb%x(2:2, :), units="1"), "mimic_bind(fuel)")
  call check(mimic_bind_output(h, "heat_release", hyb%rate(1:1, :), units="K/s"), "mimic_bind(heat_release)")
  call check(mimic_bind_output(h, "fuel_rate", hyb%rate(2:2, :), units="1/s"), "mimic_bind(fuel_rate)")
  if (len_trim(guard) > 0) then
     ! a guard file that fails to load is not the handle's error: the thread's message
     if (mimic_load_guard(h, trim(guard)) /= MIMIC_OK) then
        write (0, '(2a)') "host: cannot load the guard: ", mimic_last_error()
        stop 1
     end if
  end if
  call check(mimic_set_output_bounds(h, "fuel_rate", -huge(1.0_dp), 1e-3_dp), "mimic_set_output_bounds")
  call check(mimic_set_output_bounds(h, "heat_release", -1.0_dp, huge(1.0_dp)), "mimic_set_output_bounds")
  if (use_fallback) call check(mimic_set_fallback(h, fallback, c_loc(hyb)), "mimic_set_fallback")

  call cpu_clock(t_hyb)
  if (simulate(hyb, h) /= MIMIC_OK) stop 1
  call cpu_clock(d1)
  t_hyb = d1 - t_hyb
  call check(mimic_get_stats(h, st), "mimic_get_stats")

  ! comparison
  se_t = 0; se_y = 0; mx_t = 0; mx_y = 0; burnt_r = 0; burnt_h = 0
  finite = .true.
  do i = 1, p%n
     d1 = hyb%x(1, i) - ref%x(1, i)
     d2 = hyb%x(2, i) - ref%x(2, i)
     if (.not. (abs(hyb%x(1, i)) <= huge(1.0_dp) .and. abs(hyb%x(2, i)) <= huge(1.0_dp))) finite = .false.
     se_t = se_t + d1 * d1
     se_y = se_y + d2 * d2
     mx_t = max(mx_t, abs(d1))
     mx_y = max(mx_y, abs(d2))
     if (ref%x(1, i) > 1000.0_dp) burnt_r = burnt_r + 1
     if (hyb%x(1, i) > 1000.0_dp) burnt_h = burnt_h + 1
  end do
  rmse_t = sqrt(se_t / p%n)
  rmse_y = sqrt(se_y / p%n)
  drift_r = (energy(p, ref%x) - e0 - ref%injected) / e0
  drift_h = (energy(p, hyb%x) - e0 - hyb%injected) / e0
  call check(mimic_prof_get(ref%prof, ref%r_source, e), "mimic_prof_get")
  src_r = e%total
  call check(mimic_prof_get(hyb%prof, hyb%r_source, e), "mimic_prof_get")
  src_h = e%total
  f = src_r / t_ref
  c = src_h / src_r

  if (hot > 0) then
     write (*, '(/,a,i0,a,i0,a,i0,a)') "a posteriori (Fortran host): ", p%n, " cells, ", p%steps, " steps, seed ", &
          seed, ", hot spot injected at mid-run"
  else
     write (*, '(/,a,i0,a,i0,a,i0)') "a posteriori (Fortran host): ", p%n, " cells, ", p%steps, " steps, seed ", seed
  end if
  write (*, '(/,a,/,a)') "| quantity | reference | hybrid |", "|---|---:|---:|"
  if (finite) then
     write (*, '(a,2(g0.3,a))') "| final T: RMSE / max error vs reference (K) | - | ", rmse_t, " / ", mx_t, " |"
     write (*, '(a,2(g0.3,a))') "| final Y: RMSE / max error vs reference | - | ", rmse_y, " / ", mx_y, " |"
  else
     write (*, '(a)') "| final T, Y: error vs reference | - | not finite |"
  end if
  write (*, '(a,i0,a,i0,a)') "| burnt cells (T > 1000 K) | ", nint(burnt_r), " | ", nint(burnt_h), " |"
  write (*, '(a,es9.2,a,es9.2,a)') "| drift of the integral of T + Q Y (relative) | ", drift_r, " | ", drift_h, " |"
  write (*, '(a,g0.3,a,g0.3,a)') "| source term (s) | ", src_r, " | ", src_h, " |"
  write (*, '(a,g0.3,a,g0.3,a)') "| whole run (s) | ", t_ref, " | ", t_hyb, " |"
  write (*, '(a,g0.3,a,g0.3,a)') "| speed-up: source term / whole run | | ", src_r / src_h, "x / ", t_ref / t_hyb, "x |"
  write (*, '(a,g0.3,a,g0.3,a,g0.3,a)') "| Amdahl bound at the measured cost ratio c = ", c, " (f = ", f, ") | | ", &
       mimic_amdahl_bound(f, c), "x |"
  write (*, '(a,i0,a,i0,a)') "| samples: surrogate / fallback | | ", st%surrogate, " / ", st%fallback, " |"
  write (*, '(a,g0.3,a,g0.3,a)') "| time in mimic_run / of which fallback (s) | | ", st%seconds, " / ", &
       st%fallback_seconds, " |"
  flags_text = ""
  do k = 1, 7
     if (st%flagged(k) > 0) then
        write (val, '(a,1x,i0)') trim(why(k)), st%flagged(k)
        if (len_trim(flags_text) > 0) flags_text = trim(flags_text)//","
        flags_text = trim(flags_text)//" "//trim(val)
     end if
  end do
  write (*, '(3a)') "| flagged samples by reason | |", trim(flags_text), " |"
  write (*, '(/,a,4(es14.7,a),es10.3,a,l1,a,i0,a,i0)') "summary T_rmse=", rmse_t, " T_max=", mx_t, " Y_rmse=", &
       rmse_y, " Y_max=", mx_y, " drift=", drift_h, " finite=", finite, " surrogate=", st%surrogate, &
       " fallback=", st%fallback

  if (len_trim(dump) > 0) then
     ! the same raw layout as host.c's --dump: all T, then all Y
     open (newunit=unit, file=trim(dump), access="stream", form="unformatted", status="replace", iostat=rc)
     if (rc /= 0) stop "host: cannot write --dump"
     write (unit) hyb%x(1, :), hyb%x(2, :)
     close (unit)
  end if
  rc = mimic_close(h)
  call host_free(ref)
  call host_free(hyb)

contains

  subroutine check(status, what)
    integer, intent(in) :: status
    character(*), intent(in) :: what
    if (status /= MIMIC_OK) then
       write (0, '(4a)') "host: ", what, " failed: ", mimic_last_error(h)
       stop 1
    end if
  end subroutine check

  !> Wall-clock seconds (system_clock; cpu_time would add up threads).
  subroutine cpu_clock(t)
    real(dp), intent(out) :: t
    integer(c_int64_t) :: count, rate
    call system_clock(count, rate)
    t = real(count, dp) / real(rate, dp)
  end subroutine cpu_clock

  subroutine usage()
    write (0, '(a)') "usage: rd_host_f run MODEL [--guard FILE] | profile  [--cells N --steps N --substeps N", &
         "        --seed N --hotspot KELVIN --threads N --dump FILE --no-fallback]"
    stop 2
  end subroutine usage

end program host_f
