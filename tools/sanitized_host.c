/*
 * sanitized_host.c — linked, in sanitized builds only, into the programs that load compiled
 * models. LeakSanitizer of clang 14 crashes at exit scanning the thread-local storage of the
 * OpenMP worker threads a model starts (glibc >= 2.34), so leak checking is off for these
 * programs; AddressSanitizer's other checks stay on, and the runtime's ownership of memory is
 * checked under valgrind instead (tests/CMakeLists.txt: valgrind.run).
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
