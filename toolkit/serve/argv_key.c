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
 * In a container the environment is part of the container's configuration (`docker inspect` shows it), so
 * there the key comes on standard input instead: TRITONKIT_ADMIN_KEY_FD=0 (a number, not a secret) makes
 * this library read one line from that descriptor (only when a restricted-API flag holds the placeholder),
 * then point the descriptor at /dev/null. The key is then in no configuration, argument or environment
 * block; only in tritonserver's heap, as it is outside a container. Object-storage credentials may follow
 * the key the same way, one NAME=VALUE line each (names AWS_*, GOOGLE_* or AZURE_* only), up to an empty
 * line: they are set with setenv, which the kernel's copy of the environment (/proc/PID/environ, and so
 * `ps e`) never shows; Triton's storage clients read them with getenv.
 *
 * Built by tritonkit with the system C compiler: cc -shared -fPIC -O2 argv_key.c -o argv_key.so
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLACEHOLDER "@TRITONKIT_ADMIN_KEY@"
#define KEY_VARIABLE "TRITONKIT_ADMIN_KEY"
#define KEY_FD_VARIABLE "TRITONKIT_ADMIN_KEY_FD"
#define KEY_MAX 4096

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

static int wants_key(int argc, char **argv)
{
    for (int i = 1; argv && i < argc && argv[i]; i++)
        if (takes_key(argv[i]) && strstr(argv[i], PLACEHOLDER))
            return 1;
    return 0;
}

/* One line from `fd` into buf (without its newline); -1 at end of file before any byte. */
static long read_line(int fd, char *buf)
{
    size_t n = 0;
    while (n < KEY_MAX) {
        ssize_t got = read(fd, buf + n, 1);
        if (got < 0)
            die("cannot read the admin key from " KEY_FD_VARIABLE);
        if (got == 0) {
            if (n == 0)
                return -1;
            break;
        }
        if (buf[n] == '\n')
            break;
        n++;
    }
    if (n == KEY_MAX)
        die("a line on " KEY_FD_VARIABLE " is longer than 4096 bytes");
    buf[n] = 0;
    return (long)n;
}

static int credential_name(const char *line, const char *eq)
{
    static const char *prefixes[] = {"AWS_", "GOOGLE_", "AZURE_"};
    if (!eq || eq == line)
        return 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* The key (the first line on descriptor `fd`), then NAME=VALUE credential lines up to an empty line or end
 * of file, set with setenv; then the descriptor is pointed at /dev/null so nothing else reads the pipe it came
 * through. NULL when no key was there. */
static char *read_key(const char *fd_text)
{
    static char key[KEY_MAX + 1];
    char line[KEY_MAX + 1];
    long fd = 0;

    /* Digits by hand, not strtol: a host glibc >= 2.38 compiling for C23 links __isoc23_strtol, which the
     * older glibc inside an image (Ubuntu 22.04 in NGC's) lacks, and the library would not load there. */
    for (const char *c = fd_text; *c; c++) {
        if (*c < '0' || *c > '9' || fd > 1024)
            die(KEY_FD_VARIABLE " is not a file descriptor number");
        fd = fd * 10 + (*c - '0');
    }
    if (*fd_text == 0 || fd > 1024)
        die(KEY_FD_VARIABLE " is not a file descriptor number");
    long n = read_line((int)fd, key);
    while (n > 0) {
        long len = read_line((int)fd, line);
        if (len <= 0)
            break;
        char *eq = strchr(line, '=');
        if (!credential_name(line, eq))
            die("a line after the admin key is not NAME=VALUE with an AWS_, GOOGLE_ or AZURE_ name");
        *eq = 0;
        if (setenv(line, eq + 1, 1) != 0)
            die("out of memory");
        memset(line, 0, sizeof line);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != (int)fd) {
        dup2(null, (int)fd);
        close(null);
    }
    return n > 0 ? key : NULL;
}

__attribute__((constructor)) static void tritonkit_argv_key(int argc, char **argv, char **envp)
{
    (void)envp;
    char *key = getenv(KEY_VARIABLE);
    char *from_fd = getenv(KEY_FD_VARIABLE);
    int key_in_env = key != NULL;
    if (!key && from_fd && wants_key(argc, argv))
        key = read_key(from_fd);
    size_t key_len = key ? strlen(key) : 0;
    size_t hole_len = strlen(PLACEHOLDER);

    for (int i = 1; argv && i < argc && argv[i]; i++) {
        char *hole = takes_key(argv[i]) ? strstr(argv[i], PLACEHOLDER) : NULL;
        if (!hole)
            continue;
        if (!key_len)
            die("an argument holds the admin key placeholder but " KEY_VARIABLE " is not set (nor "
                KEY_FD_VARIABLE " with a key to read)");
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
        /* getenv points into the process's initial environment block (or the static buffer read_key
         * filled): blank it where it lies. */
        volatile char *p = key;
        for (size_t n = 0; n < key_len; n++)
            p[n] = 0;
        if (key_in_env)
            unsetenv(KEY_VARIABLE);
    }
    unsetenv(KEY_FD_VARIABLE);
    unsetenv("LD_PRELOAD");
}
