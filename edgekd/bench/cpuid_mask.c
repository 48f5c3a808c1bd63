/* Hide AVX-512 and VNNI from CPUID, natively: an x86 CPU with VNNI then runs its runtimes' AVX2 kernels.
 *
 * Loaded with LD_PRELOAD (edgekd/bench/cpuid_mask.py). Linux's ARCH_SET_CPUID (Intel "CPUID faulting",
 * /proc/cpuinfo flag cpuid_fault) makes every CPUID instruction of this process raise SIGSEGV; the handler
 * executes the real CPUID and clears the AVX-512/VNNI/AMX bits before the program sees them. Programs
 * that pick kernels from CPUID (ONNX Runtime's MLAS, oneDNN, numpy, XNNPACK) then dispatch exactly what
 * they dispatch on a CPU without those extensions. The setting survives fork and clone, and execve resets
 * it; a child started with this library in LD_PRELOAD masks itself again. The program's own SIGSEGV
 * handlers (Python's faulthandler) still get every fault that is not a CPUID. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static struct sigaction app_handler; /* the program's SIGSEGV disposition, kept behind ours */
static int app_installed;
static volatile int masking; /* 1 once CPUID faults are on: the probe reads it */

/* Leaf 7 subleaf 0: EBX avx512 f,dq,ifma,pf,er,cd,bw,vl; ECX vbmi,vbmi2,vnni,bitalg,vpopcntdq;
 * EDX 4vnniw,4fmaps,vp2intersect,amx-bf16,avx512-fp16,amx-tile,amx-int8. Subleaf 1: EAX avx-vnni,
 * avx512-bf16. Leaf 0xd: the opmask/ZMM state components. */
static void mask(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    if (leaf == 7 && sub == 0) {
        *b &= ~(1u << 16 | 1u << 17 | 1u << 21 | 1u << 26 | 1u << 27 | 1u << 28 | 1u << 30 | 1u << 31);
        *c &= ~(1u << 1 | 1u << 6 | 1u << 11 | 1u << 12 | 1u << 14);
        *d &= ~(1u << 2 | 1u << 3 | 1u << 8 | 1u << 22 | 1u << 23 | 1u << 24 | 1u << 25);
    } else if (leaf == 7 && sub == 1) {
        *a &= ~(1u << 4 | 1u << 5);
    } else if (leaf == 0xd && sub == 0) {
        *a &= ~0xe0u;
    }
}

static void chain(int sig, siginfo_t *info, void *context) {
    if (app_installed && (app_handler.sa_flags & SA_SIGINFO)) {
        app_handler.sa_sigaction(sig, info, context);
        return;
    }
    if (app_installed && app_handler.sa_handler != SIG_DFL && app_handler.sa_handler != SIG_IGN) {
        app_handler.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL); /* a real fault: die of it as the program would */
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (!(ip[0] == 0x0f && ip[1] == 0xa2)) { /* not CPUID */
        chain(sig, info, context);
        return;
    }
    unsigned leaf = (unsigned)reg[REG_RAX], sub = (unsigned)reg[REG_RCX], a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, a, b, c, d);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    mask(leaf, sub, &a, &b, &c, &d);
    reg[REG_RAX] = a, reg[REG_RBX] = b, reg[REG_RCX] = c, reg[REG_RDX] = d;
    reg[REG_RIP] += 2;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !masking) return real_sigaction(sig, act, old);
    if (old) {
        if (app_installed) {
            *old = app_handler;
        } else {
            memset(old, 0, sizeof *old);
            old->sa_handler = SIG_DFL;
        }
    }
    if (act) app_handler = *act, app_installed = 1;
    return 0;
}

/* signal() and its aliases reach the kernel through glibc's internal sigaction, not the symbol above
 * (gcc's cc1 installs its crash handler this way): route SIGSEGV through the same bookkeeping. */
static sighandler_t keep_behind(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

typedef sighandler_t (*signal_fn)(int, sighandler_t);

sighandler_t signal(int sig, sighandler_t handler) {
    if (sig == SIGSEGV && masking) return keep_behind(sig, handler);
    static signal_fn real_signal;
    if (!real_signal) real_signal = (signal_fn)dlsym(RTLD_NEXT, "signal");
    return real_signal(sig, handler);
}

sighandler_t bsd_signal(int sig, sighandler_t handler) { return signal(sig, handler); }

/* A blocked SIGSEGV raised by a fault is fatal whatever the handler: worker threads that block every
 * signal (thread pools do) would die at their first CPUID. Never let SIGSEGV be blocked. */
static const sigset_t *unblock_segv(int how, const sigset_t *set, sigset_t *copy) {
    if (!masking || set == NULL || how == SIG_UNBLOCK) return set;
    *copy = *set;
    sigdelset(copy, SIGSEGV);
    return copy;
}

typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
    static sigmask_fn real;
    if (!real) real = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
    sigset_t copy;
    return real(how, unblock_segv(how, set, &copy), old);
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
    static sigmask_fn real;
    if (!real) real = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
    sigset_t copy;
    return real(how, unblock_segv(how, set, &copy), old);
}

int edgekd_cpuid_masked(void) { return masking; }

__attribute__((constructor)) static void install(void) {
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    /* Not SA_ONSTACK: some threads set alternate stacks too small for an AVX-512 signal frame, and a
     * frame the kernel can't write kills the process (seen with NNCF/OpenVINO). The cost: a stack
     * overflow is no longer reported by Python's faulthandler, it just kills. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    if (real_sigaction(SIGSEGV, &sa, NULL) != 0) return;
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) == 0) {
        masking = 1;
    } else { /* no CPUID faulting (AMD, most hypervisors' guests, QEMU): leave the program untouched */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        real_sigaction(SIGSEGV, &dfl, NULL);
    }
}
