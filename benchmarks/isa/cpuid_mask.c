/* Hide CPU features from CPUID, so that XNNPACK, oneDNN and numpy pick the kernels of an older x86 CPU.
 *
 * Loaded with LD_PRELOAD by benchmarks/emulate_isa.py, which also compiles it. KERAS_RESNET_CPUID_MASK holds five
 * hex words: the bits to clear in CPUID leaf 7 subleaf 0 EBX, ECX, EDX and leaf 7 subleaf 1 EAX, EDX (where
 * AVX-512, VNNI, AVX-VNNI and AMX are announced). The constructor asks the kernel to make CPUID fault in this
 * thread and the ones it starts (arch_prctl ARCH_SET_CPUID 0; Linux ≥ 4.12 on a CPU with "cpuid_fault", as Intel
 * CPUs since Ivy Bridge and KVM guests on them have), and a SIGSEGV handler runs the real CPUID and masks it.
 * The flag is reset by execve; LD_PRELOAD is inherited, so child processes mask too.
 *
 * What it cannot do: the instructions themselves stay available, and /proc/cpuinfo still lists every feature.
 * Software that reads CPUID (cpuinfo in XNNPACK, oneDNN, numpy) sees the masked CPU; nothing else changes.
 * If the mask cannot be installed, the process exits with status 3 and a message, never running unmasked.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static uint32_t clear_7_0[3], clear_7_1[2]; /* EBX ECX EDX of (7, 0); EAX EDX of (7, 1) */
static struct sigaction previous;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    (void)sig;
    (void)info;
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: the previous handler takes it when it happens again */
        sigaction(SIGSEGV, &previous, NULL);
        return;
    }
    uint32_t leaf = (uint32_t)regs[REG_RAX], sub = (uint32_t)regs[REG_RCX], r[4];
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    real_cpuid(leaf, sub, r);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~clear_7_0[0];
        r[2] &= ~clear_7_0[1];
        r[3] &= ~clear_7_0[2];
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~clear_7_1[0];
        r[3] &= ~clear_7_1[1];
    }
    regs[REG_RAX] = r[0];
    regs[REG_RBX] = r[1];
    regs[REG_RCX] = r[2];
    regs[REG_RDX] = r[3];
    regs[REG_RIP] += 2; /* past the 2-byte CPUID */
}

static void fail(const char *what) {
    fprintf(stderr, "cpuid_mask: error: %s; not running unmasked\n", what);
    _exit(3);
}

__attribute__((constructor)) static void install(void) {
    const char *spec = getenv("KERAS_RESNET_CPUID_MASK");
    uint32_t r[4];
    if (!spec || !*spec)
        return;
    if (sscanf(spec, "%x %x %x %x %x", &clear_7_0[0], &clear_7_0[1], &clear_7_0[2], &clear_7_1[0], &clear_7_1[1]) != 5)
        fail("KERAS_RESNET_CPUID_MASK must be five hex words");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous) != 0)
        fail("cannot install the SIGSEGV handler");
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0)
        fail("the kernel cannot make CPUID fault here (arch_prctl ARCH_SET_CPUID: no cpuid_fault)");
    real_cpuid(7, 0, r); /* through the handler: check that the mask holds */
    if ((r[1] & clear_7_0[0]) || (r[2] & clear_7_0[1]) || (r[3] & clear_7_0[2]))
        fail("CPUID still reports a masked feature");
}
