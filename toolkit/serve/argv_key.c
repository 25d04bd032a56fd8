/*
 * Hands tritonserver its restricted-API key without the key ever being in its argument memory.
 *
 * Triton 2.51 takes the restricted-API header value only as a flag, and every local user can read
 * a process's argument memory (/proc/PID/cmdline, ps). tritonkit therefore starts tritonserver with
 * a fixed placeholder in those flags, the key in the environment variable TRITONKIT_ADMIN_KEY
 * (/proc/PID/environ is readable only by the same user and root), and this library in LD_PRELOAD.
 * glibc runs this constructor before main() with the very argv array main() receives: each argument
 * of the restricted-API flags that holds the placeholder is rebuilt on the heap with the key, and argv[i] is pointed at the copy.
 * The argument memory the kernel shows keeps the placeholder; the key never enters it.
 *
 * Then the key is wiped from the environment block and both variables are removed, so the python
 * stubs Triton starts inherit neither the key nor this library. A placeholder without a key (or
 * memory exhaustion) ends the process: Triton must never run with the public placeholder as its key.
 *
 * Built by tritonkit with the system C compiler: cc -shared -fPIC -O2 argv_key.c -o argv_key.so
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLACEHOLDER "@TRITONKIT_ADMIN_KEY@"
#define KEY_VARIABLE "TRITONKIT_ADMIN_KEY"

/* Only these flags take the key: a placeholder typed into any other argument (a repository path)
 * must not turn into the key where Triton would log it. */
static int takes_key(const char *arg)
{
    return strncmp(arg, "--http-restricted-api=", 22) == 0 || strncmp(arg, "--grpc-restricted-protocol=", 27) == 0;
}

static void die(const char *why)
{
    static const char prefix[] = "tritonkit argv_key: ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, why, strlen(why));
    (void)!write(2, "\n", 1);
    _exit(111);
}

__attribute__((constructor)) static void tritonkit_argv_key(int argc, char **argv, char **envp)
{
    (void)envp;
    char *key = getenv(KEY_VARIABLE);
    size_t key_len = key ? strlen(key) : 0;
    size_t hole_len = strlen(PLACEHOLDER);

    for (int i = 1; argv && i < argc && argv[i]; i++) {
        char *hole = takes_key(argv[i]) ? strstr(argv[i], PLACEHOLDER) : NULL;
        if (!hole)
            continue;
        if (!key_len)
            die("an argument holds the admin key placeholder but " KEY_VARIABLE " is not set");
        size_t before = (size_t)(hole - argv[i]);
        size_t after = strlen(hole + hole_len);
        char *arg = malloc(before + key_len + after + 1);
        if (!arg)
            die("out of memory");
        memcpy(arg, argv[i], before);
        memcpy(arg + before, key, key_len);
        memcpy(arg + before + key_len, hole + hole_len, after + 1);
        argv[i] = arg;
    }
    if (key) {
        /* getenv points into the process's initial environment block: blank it where it lies. */
        volatile char *p = key;
        for (size_t n = 0; n < key_len; n++)
            p[n] = 0;
        unsetenv(KEY_VARIABLE);
    }
    unsetenv("LD_PRELOAD");
}
