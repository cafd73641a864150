# Cross build for Linux aarch64 with Debian's cross toolchain (gcc-aarch64-linux-gnu) and its
# multiarch libraries (libpcre2-dev:arm64, libutf8proc-dev:arm64, ...: /usr/lib/aarch64-linux-gnu,
# headers in /usr/include and /usr/include/aarch64-linux-gnu). scripts/cross.sh installs them and uses this file:
#   cmake -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DRSRC_RUNTIME_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# find_library looks in <prefix>/lib/aarch64-linux-gnu, never in the build machine's
# /usr/lib/x86_64-linux-gnu; headers shared by both architectures stay in /usr/include. The roots:
# the cross toolchain's libc, and / itself, where multiarch puts the arm64 packages.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # programs run here: the build machine's
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config (FindOpenSSL asks it for hints) must describe the arm64 packages, not this machine's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# ctest runs the test programs under user-mode QEMU. The dynamic loader, libc, libgomp and the
# libraries named above all come from Debian's arm64 packages (libc6:arm64, libgomp1:arm64, ...),
# one consistent set where the aarch64 loader looks by default: -L / lets QEMU take the ELF
# interpreter /lib/ld-linux-aarch64.so.1 where libc6:arm64 put it. (-L /usr/aarch64-linux-gnu would
# start the cross toolchain's own ld.so, of another glibc build than the libc.so.6 it then finds in
# /lib/aarch64-linux-gnu: scripts/cross.sh says more.)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
