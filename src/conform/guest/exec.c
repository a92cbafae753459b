/*
 * vfio-sim-exec: runs compiled vfio-sim scenarios on a real Linux kernel (inside the conformance
 * guest) and writes one JSON line of raw facts per step. The host side (src/conform/) compiles the
 * scenarios, turns these facts into `run --json` step results and diffs them with the model's.
 *
 *   vfio-sim-exec [--no-probe] PROGRAM [OUTPUT]   (OUTPUT defaults to stdout)
 *
 * --no-probe leaves tracefs alone (faults are then reported as null): for running programs without
 * devices on a host, as the test suite does.
 *
 * Processes: the executor is the *driver*. Each process of a scenario is a worker process that
 * reads one command at a time from its pipe and answers on another; the driver resolves every
 * value (names bound by `as:`, fields of ioctl structs) before it sends a command, so workers only
 * make system calls. A `fork` step forks the worker itself (the child keeps its VMAs, page tables
 * and fds), and the child then serves the pipes the driver made for that process name.
 *
 * Devices: /dev/vfio/devices/NAME in a scenario is opened through the legacy group/container API
 * (VFIO_GROUP_GET_DEVICE_FD), since the kernels this runs on may lack the vfio cdev.
 *
 * Faults: a kprobe and a kretprobe on vfio_pci_mmap_huge_fault (tracefs kprobe_events) record the
 * order, address, VMA start and return value of every call; the driver clears the trace buffer
 * before each step and reads it after. Unlike vfio_pci_core's dev_dbg line, nothing is rate
 * limited. (Its .fault handler tail-calls the huge fault handler with order 0, so one probe sees
 * every order.)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#define MAXPROC 16
#define MAXNAME 64
#define MAXBIND 512
#define MAXFIELD 12
#define MAXDEV 8
#define MAXDIRTY 4096
#define LINE 65536
#define TRACE "/sys/kernel/tracing"
#define CONFIG_OFFSET (7ULL << 40) /* VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) */

static FILE *out;
static int have_probe;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "vfio-sim-exec: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	if (out) {
		fprintf(out, "{\"fatal\":\"executor stopped, see the guest console\"}\n");
		fflush(out);
	}
	exit(2);
}

static int write_file(const char *path, const char *s, int flags)
{
	int fd = open(path, O_WRONLY | flags);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	ssize_t n;
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	close(fd);
	return (int)got;
}

static void hexbytes(char *dst, const uint8_t *b, size_t n)
{
	static const char *d = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = d[b[i] >> 4];
		dst[2 * i + 1] = d[b[i] & 15];
	}
	dst[2 * n] = 0;
}

static size_t unhex(uint8_t *dst, size_t max, const char *s)
{
	size_t n = 0;
	while (s[0] && s[1] && isxdigit((unsigned char)s[0]) && n < max) {
		char t[3] = { s[0], s[1], 0 };
		dst[n++] = (uint8_t)strtoul(t, NULL, 16);
		s += 2;
	}
	return n;
}

/* ---------------------------------------------------------------- faults (kprobes) */

static void probe_setup(void)
{
	struct stat st;
	if (stat(TRACE "/kprobe_events", &st) != 0)
		mount("nodev", TRACE, "tracefs", 0, NULL);
	write_file(TRACE "/events/vfiosim/enable", "0", 0);
	write_file(TRACE "/kprobe_events", "-:vfiosim/vfiosim_fault\n", O_APPEND);
	write_file(TRACE "/kprobe_events", "-:vfiosim/vfiosim_fault_ret\n", O_APPEND);
	/* struct vm_fault: vma at 0, address at 24; vm_area_struct: vm_start at 0. The handler lives in
	 * the vfio_pci_core module, or in the kernel itself when vfio-pci is built in. */
	int a = -1, b = -1;
	for (int builtin = 0; builtin < 2 && (a || b); builtin++) {
		char ev[512];
		const char *sym = builtin ? "vfio_pci_mmap_huge_fault" : "vfio_pci_core:vfio_pci_mmap_huge_fault";
		snprintf(ev, sizeof(ev), "p:vfiosim/vfiosim_fault %s addr=+24(%%di):x64 start=+0(+0(%%di)):x64 order=%%si:u32\n", sym);
		a = write_file(TRACE "/kprobe_events", ev, O_APPEND);
		snprintf(ev, sizeof(ev), "r:vfiosim/vfiosim_fault_ret %s ret=$retval:x32\n", sym);
		b = write_file(TRACE "/kprobe_events", ev, O_APPEND);
		if (a || b) {
			write_file(TRACE "/kprobe_events", "-:vfiosim/vfiosim_fault\n", O_APPEND);
			write_file(TRACE "/kprobe_events", "-:vfiosim/vfiosim_fault_ret\n", O_APPEND);
		}
	}
	int c = write_file(TRACE "/buffer_size_kb", "4096", 0);
	int d = write_file(TRACE "/events/vfiosim/enable", "1", 0);
	have_probe = !a && !b && !d;
	if (!have_probe)
		fprintf(stderr, "vfio-sim-exec: no fault probe (kprobe_events: %d %d, enable: %d, buffer: %d); faults will not be reported\n", a, b, d, c);
}

static void trace_clear(void)
{
	if (have_probe)
		write_file(TRACE "/trace", "", O_TRUNC);
}

static char tracebuf[1 << 20];

/* Appends the faults of the trace buffer to `j` as a JSON array (entry and return lines pair up:
 * the scenario runs one step at a time and the handler does not nest). */
static void trace_faults(char *j, size_t cap)
{
	size_t len = strlen(j);
	if (!have_probe) {
		snprintf(j + len, cap - len, ",\"faults\":null");
		return;
	}
	if (read_file(TRACE "/trace", tracebuf, sizeof(tracebuf)) < 0) {
		snprintf(j + len, cap - len, ",\"faults\":null");
		return;
	}
	len += snprintf(j + len, cap - len, ",\"faults\":[");
	int n = 0, open_entry = 0;
	for (char *line = strtok(tracebuf, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		char *p;
		if ((p = strstr(line, "vfiosim_fault_ret:"))) {
			char *r = strstr(p, "ret=");
			if (!r || !open_entry)
				continue;
			len += snprintf(j + len, cap - len, ",\"ret\":\"%s\"}", r + 4);
			open_entry = 0;
		} else if ((p = strstr(line, "vfiosim_fault:"))) {
			char *a = strstr(p, "addr="), *s = strstr(p, "start="), *o = strstr(p, "order=");
			if (!a || !s || !o)
				continue;
			if (open_entry)
				len += snprintf(j + len, cap - len, ",\"ret\":null}");
			unsigned long long addr = strtoull(a + 5, NULL, 0), start = strtoull(s + 6, NULL, 0);
			unsigned order = (unsigned)strtoul(o + 6, NULL, 0);
			len += snprintf(j + len, cap - len, "%s{\"addr\":\"0x%llx\",\"start\":\"0x%llx\",\"order\":%u", n++ ? "," : "", addr, start, order);
			open_entry = 1;
		}
		if (len >= cap - 128)
			break;
	}
	if (open_entry)
		len += snprintf(j + len, cap - len, ",\"ret\":null}");
	snprintf(j + len, cap - len, "]");
}

/* ---------------------------------------------------------------- the program */

enum { T_LIT, T_REF, T_FIELD };
struct term {
	int sign;
	int kind;
	uint64_t lit;
	int ref;
	char field[32];
};
#define MAXTERM 8
struct expr {
	int n;
	struct term t[MAXTERM];
};

struct field {
	char name[32];
	int off, size;
};

struct binding {
	int set;
	uint64_t value;
	int nf;
	struct field f[MAXFIELD];
	uint8_t buf[256];
};

struct device {
	char name[MAXNAME];
	char bdf[32];
	int group;
	unsigned vendor, device;
};

struct dirty {
	uint64_t off;
	int width;
	int dev;
};

struct mapping {
	int proc;
	uint64_t va, len, off;
	int dev;
};

struct scenario {
	char name[256];
	int nproc;
	char procs[MAXPROC][MAXNAME];
	int forked[MAXPROC]; /* made by a fork step, not at the start */
	int ndev;
	struct device dev[MAXDEV];
	struct binding bind[MAXBIND];
	struct dirty dirty[MAXDIRTY];
	int ndirty;
	struct mapping maps[256];
	int nmaps;
	/* fd value -> device index, per process (to attribute pwrites and mmaps) */
	int fddev[MAXPROC][256];
};

static struct scenario S;

static int proc_index(const char *name)
{
	for (int i = 0; i < S.nproc; i++)
		if (!strcmp(S.procs[i], name))
			return i;
	return -1;
}

/* "+0x10+$3.offset-$4" */
static void parse_expr(struct expr *e, const char *s)
{
	e->n = 0;
	while (*s) {
		if (e->n == MAXTERM)
			die("expression too long: %s", s);
		struct term *t = &e->t[e->n++];
		t->sign = 1;
		if (*s == '+' || *s == '-') {
			t->sign = *s == '-' ? -1 : 1;
			s++;
		}
		if (*s == '$') {
			char *end;
			t->ref = (int)strtol(s + 1, &end, 10);
			s = end;
			t->kind = T_REF;
			if (*s == '.') {
				int k = 0;
				s++;
				while ((isalnum((unsigned char)*s) || *s == '_') && k < 31)
					t->field[k++] = *s++;
				t->field[k] = 0;
				t->kind = T_FIELD;
			}
		} else {
			char *end;
			t->kind = T_LIT;
			t->lit = strtoull(s, &end, 0);
			if (end == s)
				die("bad expression at \"%s\"", s);
			s = end;
		}
	}
}

static uint64_t field_value(struct binding *b, const char *name, int *ok)
{
	for (int i = 0; i < b->nf; i++) {
		if (strcmp(b->f[i].name, name))
			continue;
		uint64_t v = 0;
		for (int k = b->f[i].size - 1; k >= 0; k--)
			v = (v << 8) | b->buf[b->f[i].off + k];
		*ok = 1;
		return v;
	}
	*ok = 0;
	return 0;
}

/* As the model does: a name not bound (yet) is -1. */
static uint64_t eval(const char *s)
{
	struct expr e;
	parse_expr(&e, s);
	uint64_t v = 0;
	for (int i = 0; i < e.n; i++) {
		struct term *t = &e.t[i];
		uint64_t x = (uint64_t)-1;
		if (t->kind == T_LIT)
			x = t->lit;
		else if (t->ref >= 0 && t->ref < MAXBIND && S.bind[t->ref].set) {
			int ok = 1;
			x = t->kind == T_REF ? S.bind[t->ref].value : field_value(&S.bind[t->ref], t->field, &ok);
			if (!ok)
				x = (uint64_t)-1;
		}
		v += t->sign > 0 ? x : -x;
	}
	return v;
}

/* key=value lookup in a step's argument tokens */
static const char *arg(char **kv, int n, const char *key)
{
	size_t k = strlen(key);
	for (int i = 0; i < n; i++)
		if (!strncmp(kv[i], key, k) && kv[i][k] == '=')
			return kv[i] + k + 1;
	return NULL;
}

static uint64_t argv_u(char **kv, int n, const char *key, uint64_t dflt)
{
	const char *v = arg(kv, n, key);
	return v ? eval(v) : dflt;
}

/* ---------------------------------------------------------------- workers */

struct pipes {
	int cmd[2], res[2];
};
static struct pipes P[MAXPROC];
static pid_t pids[MAXPROC];
static int alive[MAXPROC];

/* per worker: the container and group fds it opened (inherited across fork) */
static int w_container = -1, w_iommu_set;
static int w_groups[64];

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig, fault_code;
static volatile uint64_t fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_sig = sig;
	fault_code = si->si_code;
	fault_addr = (uint64_t)(uintptr_t)si->si_addr;
	siglongjmp(fault_jmp, 1);
}

static int open_group_device(int group, const char *bdf)
{
	if (w_container < 0) {
		w_container = open("/dev/vfio/vfio", O_RDWR);
		if (w_container < 0)
			return -errno;
	}
	if (group < 0 || group >= 64)
		return -ENODEV;
	if (w_groups[group] <= 0) {
		char path[64];
		snprintf(path, sizeof(path), "/dev/vfio/%d", group);
		int g = open(path, O_RDWR);
		if (g < 0)
			return -errno;
		struct vfio_group_status st = { .argsz = sizeof(st) };
		if (ioctl(g, VFIO_GROUP_GET_STATUS, &st) < 0 || !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
			close(g);
			return -EPERM;
		}
		if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &w_container) < 0) {
			int e = -errno;
			close(g);
			return e;
		}
		if (!w_iommu_set) {
			if (ioctl(w_container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
				int e = -errno;
				close(g);
				return e;
			}
			w_iommu_set = 1;
		}
		w_groups[group] = g;
	}
	int fd = ioctl(w_groups[group], VFIO_GROUP_GET_DEVICE_FD, bdf);
	return fd < 0 ? -errno : fd;
}

static uint64_t access_mem(uint64_t va, int width, int write, uint64_t value)
{
	volatile void *p = (volatile void *)(uintptr_t)va;
	switch (width) {
	case 1: if (write) *(volatile uint8_t *)p = (uint8_t)value; else return *(volatile uint8_t *)p; break;
	case 2: if (write) *(volatile uint16_t *)p = (uint16_t)value; else return *(volatile uint16_t *)p; break;
	case 4: if (write) *(volatile uint32_t *)p = (uint32_t)value; else return *(volatile uint32_t *)p; break;
	default: if (write) *(volatile uint64_t *)p = value; else return *(volatile uint64_t *)p; break;
	}
	return 0;
}

static void reply(int proc, const char *s)
{
	size_t n = strlen(s);
	if (write(P[proc].res[1], s, n) != (ssize_t)n)
		_exit(3);
}

static ssize_t read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	while (n + 1 < cap) {
		if (timeout_ms >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int r = poll(&p, 1, timeout_ms);
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0 && errno == EINTR)
				continue;
		}
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return n ? (ssize_t)n : -EPIPE;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return (ssize_t)n;
}

static uint8_t iobuf[1 << 20];

/* One command: "<op> <args…>" with resolved numbers; answers "ret=… err=… sig=… code=… addr=… buf=…" */
static void worker_loop(int first)
{
	volatile int me = first; /* a fork step makes the child another process */
	static char line[LINE], res[LINE];
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	for (;;) {
		if (read_line(P[me].cmd[0], line, sizeof(line), -1) < 0)
			_exit(0);
		char *tok[64];
		int nt = 0;
		for (char *t = strtok(line, " "); t && nt < 64; t = strtok(NULL, " "))
			tok[nt++] = t;
		if (!nt)
			continue;
		const char *op = tok[0];
#define U(i) (nt > (i) ? strtoull(tok[i], NULL, 0) : 0)
		volatile long long ret = 0;
		volatile int err = 0;
		volatile size_t bufn = 0;
		fault_sig = 0;
		if (!strcmp(op, "quit")) {
			_exit(0);
		} else if (!strcmp(op, "opendev")) {
			ret = open_group_device((int)U(1), tok[2]);
		} else if (!strcmp(op, "open")) {
			ret = open(tok[1], (int)U(2));
		} else if (!strcmp(op, "close")) {
			ret = close((int)U(1));
		} else if (!strcmp(op, "dup")) {
			ret = dup((int)U(1));
		} else if (!strcmp(op, "ioctl")) {
			bufn = nt > 3 ? unhex(iobuf, 4096, tok[3]) : 0;
			ret = ioctl((int)U(1), (unsigned long)U(2), bufn ? (void *)iobuf : NULL);
		} else if (!strcmp(op, "ioctlv")) {
			/* an ioctl whose argument is a number (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU) */
			ret = ioctl((int)U(1), (unsigned long)U(2), (unsigned long)U(3));
		} else if (!strcmp(op, "mmap")) {
			void *p = mmap((void *)(uintptr_t)U(1), U(2), (int)U(3), (int)U(4), (int)U(5), (off_t)U(6));
			ret = p == MAP_FAILED ? -1 : (long long)(uintptr_t)p;
		} else if (!strcmp(op, "munmap")) {
			ret = munmap((void *)(uintptr_t)U(1), U(2));
		} else if (!strcmp(op, "mprotect")) {
			ret = mprotect((void *)(uintptr_t)U(1), U(2), (int)U(3));
		} else if (!strcmp(op, "madvise")) {
			ret = madvise((void *)(uintptr_t)U(1), U(2), (int)U(3));
		} else if (!strcmp(op, "mremap")) {
			void *p = mremap((void *)(uintptr_t)U(1), U(2), U(3), (int)U(4));
			ret = p == MAP_FAILED ? -1 : (long long)(uintptr_t)p;
		} else if (!strcmp(op, "access")) {
			/* access VA WIDTH WRITE VALUE */
			if (sigsetjmp(fault_jmp, 1) == 0)
				ret = (long long)access_mem(U(1), (int)U(2), (int)U(3), U(4));
		} else if (!strcmp(op, "pread") || !strcmp(op, "pwrite")) {
			/* pread FD OFFSET LEN [USERBUF] ; pwrite FD OFFSET HEXBYTES */
			int w = op[1] == 'w';
			if (w) {
				size_t n = unhex(iobuf, sizeof(iobuf), tok[3]);
				ret = pwrite((int)U(1), iobuf, n, (off_t)U(2));
			} else {
				size_t len = U(3);
				void *dst = nt > 4 ? (void *)(uintptr_t)U(4) : iobuf;
				if (dst == iobuf && len > sizeof(iobuf))
					len = sizeof(iobuf);
				ret = pread((int)U(1), dst, len, (off_t)U(2));
				if (ret > 0 && dst == iobuf)
					bufn = ret < 64 ? (size_t)ret : 64;
			}
		} else if (!strcmp(op, "fork")) {
			int child = (int)U(1);
			pid_t pid = fork();
			if (pid == 0) {
				me = child; /* the child serves the pipes of its own process name */
				continue;
			}
			ret = pid;
		} else if (!strcmp(op, "exit")) {
			reply(me, "ret=0\n");
			_exit(0);
		} else {
			ret = -1;
			errno = ENOSYS;
		}
		/* a load returns data, any 64-bit value; everything else is a system call */
		if (ret < 0 && !fault_sig && strcmp(op, "access")) {
			/* opendev returns -errno itself; the others return -1 and set errno */
			err = !strcmp(op, "opendev") ? (int)-ret : errno;
		}
		int n = 0;
		if (fault_sig)
			n = snprintf(res, sizeof(res), "sig=%d code=%d addr=0x%" PRIx64, (int)fault_sig, (int)fault_code, (uint64_t)fault_addr);
		else if (err)
			n = snprintf(res, sizeof(res), "err=%d", err);
		else
			n = snprintf(res, sizeof(res), "ret=0x%llx", (unsigned long long)ret);
		if (bufn && !fault_sig && !err) {
			n += snprintf(res + n, sizeof(res) - n, " buf=");
			hexbytes(res + n, iobuf, bufn);
			n += 2 * bufn;
		}
		snprintf(res + n, sizeof(res) - n, "\n");
		reply(me, res);
	}
}

static void start_worker(int proc, int from)
{
	(void)from;
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		worker_loop(proc);
		_exit(0);
	}
	pids[proc] = pid;
	alive[proc] = 1;
}

/* ---------------------------------------------------------------- the driver */

static int dev_index(const char *name)
{
	for (int i = 0; i < S.ndev; i++)
		if (!strcmp(S.dev[i].name, name))
			return i;
	return -1;
}

static void add_dirty(int dev, uint64_t off, int width)
{
	if (dev < 0 || S.ndirty >= MAXDIRTY)
		return;
	S.dirty[S.ndirty++] = (struct dirty){ off, width, dev };
}

/* the device region offset a VA of process `proc` maps, via the mmaps the driver saw */
static int va_to_dev(int proc, uint64_t va, uint64_t *off)
{
	for (int i = S.nmaps - 1; i >= 0; i--) {
		struct mapping *m = &S.maps[i];
		if (m->proc == proc && va >= m->va && va < m->va + m->len) {
			*off = m->off + (va - m->va);
			return m->dev;
		}
	}
	return -1;
}

static void json_str(char *dst, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 3 < cap; s++) {
		if (*s == '"' || *s == '\\')
			dst[n++] = '\\';
		dst[n++] = *s;
	}
	dst[n] = 0;
}

/* Runs one step; returns 0, or -1 when the process is gone or did not answer. */
static int run_step(char *line)
{
	static char cmd[LINE], res[LINE], j[LINE];
	char *tok[96];
	int nt = 0;
	for (char *t = strtok(line, " "); t && nt < 96; t = strtok(NULL, " "))
		tok[nt++] = t;
	/* step PROC THREAD INDEX OP BIND key=value… */
	if (nt < 6)
		die("bad step line");
	int proc = proc_index(tok[1]);
	const char *thread = tok[2], *op = tok[4];
	int index = atoi(tok[3]), bind = atoi(tok[5]);
	char **kv = tok + 6;
	int nkv = nt - 6;
	if (proc < 0)
		die("unknown process %s", tok[1]);
	char th[128];
	json_str(th, sizeof(th), thread);
	int n = snprintf(j, sizeof(j), "{\"thread\":\"%s\",\"index\":%d,\"op\":\"%s\"", th, index, op);
	if (!alive[proc]) {
		snprintf(j + n, sizeof(j) - n, ",\"error\":\"process %s is not running\"}\n", tok[1]);
		fputs(j, out);
		return -1;
	}
	/* build the worker command */
	const char *s;
	int devi = -1;
	uint64_t dirty_off = 0;
	int dirty_w = 0, dirty_dev = -1;
	int devfd_dev = -1;
	if (!strcmp(op, "open")) {
		const char *path = arg(kv, nkv, "path");
		const char *dn = arg(kv, nkv, "dev");
		const char *gn = arg(kv, nkv, "group");
		int gi = gn ? dev_index(gn) : -1;
		if (gi >= 0)
			/* /dev/vfio/N of the scenario: the group of the device that stands for its device N */
			snprintf(cmd, sizeof(cmd), "open /dev/vfio/%d 0x%" PRIx64 "\n", S.dev[gi].group, argv_u(kv, nkv, "flags", O_RDWR));
		else if (dn && (devi = dev_index(dn)) >= 0)
			snprintf(cmd, sizeof(cmd), "opendev %d %s\n", S.dev[devi].group, S.dev[devi].bdf);
		else
			snprintf(cmd, sizeof(cmd), "open %s 0x%" PRIx64 "\n", path ? path : "/nonexistent", argv_u(kv, nkv, "flags", O_RDWR));
	} else if (!strcmp(op, "close") || !strcmp(op, "dup")) {
		snprintf(cmd, sizeof(cmd), "%s 0x%" PRIx64 "\n", op, argv_u(kv, nkv, "fd", -1));
	} else if (!strcmp(op, "ioctl")) {
		const char *v = arg(kv, nkv, "val");
		if (v)
			snprintf(cmd, sizeof(cmd), "ioctlv 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n", argv_u(kv, nkv, "fd", -1), argv_u(kv, nkv, "cmd", 0), eval(v));
		else {
			/* the struct, with every patch=OFFSET:SIZE:EXPR (a field naming a run-time value) filled in */
			static uint8_t ab[4096];
			static char hx[2 * sizeof(ab) + 1];
			s = arg(kv, nkv, "arg");
			size_t an = s ? unhex(ab, sizeof(ab), s) : 0;
			for (int i = 0; i < nkv; i++) {
				int off, size;
				char e[256];
				if (strncmp(kv[i], "patch=", 6) || sscanf(kv[i] + 6, "%d:%d:%255s", &off, &size, e) != 3 || off < 0 || size > 8 || (size_t)(off + size) > an)
					continue;
				uint64_t x = eval(e);
				for (int k = 0; k < size; k++)
					ab[off + k] = (uint8_t)(x >> (8 * k));
			}
			hexbytes(hx, ab, an);
			snprintf(cmd, sizeof(cmd), "ioctl 0x%" PRIx64 " 0x%" PRIx64 " %s\n", argv_u(kv, nkv, "fd", -1), argv_u(kv, nkv, "cmd", 0), hx);
		}
		/* VFIO_GROUP_GET_DEVICE_FD: the fd it returns is that device's */
		const char *df = arg(kv, nkv, "devfd");
		if (df)
			devfd_dev = dev_index(df);
	} else if (!strcmp(op, "mmap")) {
		snprintf(cmd, sizeof(cmd), "mmap 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n",
			 argv_u(kv, nkv, "addr", 0), argv_u(kv, nkv, "length", 0), argv_u(kv, nkv, "prot", 3), argv_u(kv, nkv, "flags", 1),
			 argv_u(kv, nkv, "fd", -1), argv_u(kv, nkv, "offset", 0));
	} else if (!strcmp(op, "munmap")) {
		snprintf(cmd, sizeof(cmd), "munmap 0x%" PRIx64 " 0x%" PRIx64 "\n", argv_u(kv, nkv, "addr", 0), argv_u(kv, nkv, "length", 0));
	} else if (!strcmp(op, "mprotect") || !strcmp(op, "madvise")) {
		snprintf(cmd, sizeof(cmd), "%s 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n", op, argv_u(kv, nkv, "addr", 0), argv_u(kv, nkv, "length", 0),
			 argv_u(kv, nkv, op[1] == 'p' ? "prot" : "advice", 0));
	} else if (!strcmp(op, "mremap")) {
		snprintf(cmd, sizeof(cmd), "mremap 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n", argv_u(kv, nkv, "addr", 0),
			 argv_u(kv, nkv, "old_length", 0), argv_u(kv, nkv, "new_length", 0), argv_u(kv, nkv, "flags", 0));
	} else if (!strcmp(op, "load") || !strcmp(op, "store")) {
		uint64_t va = argv_u(kv, nkv, "addr", 0);
		int w = (int)argv_u(kv, nkv, "width", 4), st = op[0] == 's';
		snprintf(cmd, sizeof(cmd), "access 0x%" PRIx64 " %d %d 0x%" PRIx64 "\n", va, w, st, argv_u(kv, nkv, "value", 0));
		if (st && (dirty_dev = va_to_dev(proc, va, &dirty_off)) >= 0)
			dirty_w = w;
	} else if (!strcmp(op, "read")) {
		s = arg(kv, nkv, "buf");
		if (s)
			snprintf(cmd, sizeof(cmd), "pread 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n", argv_u(kv, nkv, "fd", -1),
				 argv_u(kv, nkv, "offset", 0), argv_u(kv, nkv, "length", 0), eval(s));
		else
			snprintf(cmd, sizeof(cmd), "pread 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 "\n", argv_u(kv, nkv, "fd", -1),
				 argv_u(kv, nkv, "offset", 0), argv_u(kv, nkv, "length", 0));
	} else if (!strcmp(op, "write") || !strcmp(op, "config_write") || !strcmp(op, "config_read")) {
		/* write / config_*: pread/pwrite of WIDTH little-endian bytes at OFFSET (config: in the config region) */
		int w = (int)argv_u(kv, nkv, "width", 4), cfg = op[0] == 'c', wr = op[0] == 'w' || op[7] == 'w';
		uint64_t fd = argv_u(kv, nkv, "fd", -1);
		uint64_t off = cfg ? CONFIG_OFFSET + argv_u(kv, nkv, "off", 0) : argv_u(kv, nkv, "offset", 0);
		if (wr) {
			uint8_t b[8];
			uint64_t v = argv_u(kv, nkv, "value", 0);
			for (int i = 0; i < 8; i++)
				b[i] = (uint8_t)(v >> (8 * i));
			char hx[17];
			hexbytes(hx, b, w > 8 ? 8 : w);
			snprintf(cmd, sizeof(cmd), "pwrite 0x%" PRIx64 " 0x%" PRIx64 " %s\n", fd, off, hx);
			if (!cfg && (int64_t)fd >= 0 && fd < 256 && (dirty_dev = S.fddev[proc][fd]) >= 0) {
				dirty_off = off;
				dirty_w = w;
			}
		} else
			snprintf(cmd, sizeof(cmd), "pread 0x%" PRIx64 " 0x%" PRIx64 " %d\n", fd, off, w);
	} else if (!strcmp(op, "hwconfig_write") || !strcmp(op, "hwconfig_read")) {
		/* the hardware register behind VFIO's back, as setpci does: sysfs config */
		int d = dev_index(arg(kv, nkv, "dev") ? arg(kv, nkv, "dev") : "");
		if (d < 0)
			die("hwconfig: unknown device");
		char path[128];
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", S.dev[d].bdf);
		int w = (int)argv_u(kv, nkv, "width", 4);
		int fd = open(path, O_RDWR);
		long long r;
		uint64_t v = argv_u(kv, nkv, "value", 0), got = 0;
		if (op[8] == 'w')
			r = pwrite(fd, &v, w, (off_t)argv_u(kv, nkv, "off", 0));
		else
			r = pread(fd, &got, w, (off_t)argv_u(kv, nkv, "off", 0));
		int e = r < 0 ? errno : 0;
		close(fd);
		/* answered by the driver itself: no worker involved */
		if (e)
			snprintf(res, sizeof(res), "err=%d", e);
		else
			snprintf(res, sizeof(res), "ret=0x%llx", (unsigned long long)(op[8] == 'w' ? (uint64_t)r : got));
		goto have_result;
	} else if (!strcmp(op, "post") || !strcmp(op, "wait")) {
		/* the scenario's own synchronization: the program is already in an order where every
		 * wait follows its post, so the driver answers it */
		snprintf(res, sizeof(res), "ret=0x0");
		goto have_result;
	} else if (!strcmp(op, "fork")) {
		int child = proc_index(arg(kv, nkv, "as") ? arg(kv, nkv, "as") : "");
		if (child < 0)
			die("fork: unknown process");
		snprintf(cmd, sizeof(cmd), "fork %d\n", child);
	} else if (!strcmp(op, "exit")) {
		snprintf(cmd, sizeof(cmd), "exit\n");
	} else {
		snprintf(j + n, sizeof(j) - n, ",\"error\":\"the executor has no operation %s\"}\n", op);
		fputs(j, out);
		return 0;
	}
	trace_clear();
	if (write(P[proc].cmd[1], cmd, strlen(cmd)) < 0) {
		alive[proc] = 0;
		snprintf(j + n, sizeof(j) - n, ",\"error\":\"process %s is gone\"}\n", tok[1]);
		fputs(j, out);
		return -1;
	}
	if (read_line(P[proc].res[0], res, sizeof(res), 30000) < 0) {
		kill(pids[proc], SIGKILL);
		alive[proc] = 0;
		snprintf(j + n, sizeof(j) - n, ",\"error\":\"process %s did not answer in 30 s (killed)\"}\n", tok[1]);
		fputs(j, out);
		return -1;
	}
have_result:;
	/* parse the answer */
	uint64_t ret = 0;
	int err = 0, sig = 0, code = 0, has_ret = 0;
	uint64_t addr = 0;
	char *buf = NULL;
	for (char *t = strtok(res, " "); t; t = strtok(NULL, " ")) {
		if (!strncmp(t, "ret=", 4))
			ret = strtoull(t + 4, NULL, 0), has_ret = 1;
		else if (!strncmp(t, "err=", 4))
			err = atoi(t + 4);
		else if (!strncmp(t, "sig=", 4))
			sig = atoi(t + 4);
		else if (!strncmp(t, "code=", 5))
			code = atoi(t + 5);
		else if (!strncmp(t, "addr=", 5))
			addr = strtoull(t + 5, NULL, 0);
		else if (!strncmp(t, "buf=", 4))
			buf = t + 4;
	}
	if (sig)
		n += snprintf(j + n, sizeof(j) - n, ",\"signal\":%d,\"si_code\":%d,\"si_addr\":\"0x%" PRIx64 "\"", sig, code, addr);
	else if (err)
		n += snprintf(j + n, sizeof(j) - n, ",\"errno\":%d", err);
	else if (has_ret)
		n += snprintf(j + n, sizeof(j) - n, ",\"ret\":\"0x%" PRIx64 "\"", ret);
	if (buf)
		n += snprintf(j + n, sizeof(j) - n, ",\"buf\":\"%s\"", buf);
	if (strcmp(op, "hwconfig_write") && strcmp(op, "hwconfig_read") && strcmp(op, "post") && strcmp(op, "wait"))
		trace_faults(j + n, sizeof(j) - n);
	n = strlen(j);
	snprintf(j + n, sizeof(j) - n, "}\n");
	fputs(j, out);
	fflush(out);

	/* bookkeeping: bindings, fds of devices, mappings, bytes to clean */
	int ok = !sig && !err && has_ret;
	if (ok && bind >= 0 && bind < MAXBIND) {
		struct binding *b = &S.bind[bind];
		memset(b, 0, sizeof(*b));
		b->set = 1;
		b->value = ret;
		const char *f = arg(kv, nkv, "fields");
		if (!strcmp(op, "ioctl") && f) {
			/* the struct the kernel wrote back; fields=name:off:size,… */
			unhex(b->buf, sizeof(b->buf), buf ? buf : "");
			char tmp[512];
			snprintf(tmp, sizeof(tmp), "%s", f);
			for (char *save, *x = strtok_r(tmp, ",", &save); x && b->nf < MAXFIELD; x = strtok_r(NULL, ",", &save)) {
				struct field *fl = &b->f[b->nf];
				if (sscanf(x, "%31[^:]:%d:%d", fl->name, &fl->off, &fl->size) == 3 && fl->off + fl->size <= (int)sizeof(b->buf))
					b->nf++;
			}
		} else if (!strcmp(op, "read") || !strcmp(op, "config_read")) {
			/* `data` of a read: the bytes read, little endian */
			size_t k = unhex(b->buf, 8, buf ? buf : "");
			b->f[0] = (struct field){ "data", 0, (int)k };
			b->nf = 1;
			if (op[0] == 'c') {
				uint64_t v = 0;
				for (int i = (int)k - 1; i >= 0; i--)
					v = (v << 8) | b->buf[i];
				b->value = v;
			}
		} else if (!strcmp(op, "load") || !strcmp(op, "hwconfig_read"))
			b->value = ret;
	}
	if (ok && (!strcmp(op, "open") || !strcmp(op, "dup")) && ret < 256) {
		int d = devi;
		if (op[0] == 'd') {
			uint64_t from = argv_u(kv, nkv, "fd", -1);
			d = from < 256 ? S.fddev[proc][from] : -1;
		}
		S.fddev[proc][ret] = d;
	}
	if (ok && !strcmp(op, "ioctl") && devfd_dev >= 0 && ret < 256)
		S.fddev[proc][ret] = devfd_dev;
	if (ok && !strcmp(op, "mmap") && S.nmaps < 256) {
		uint64_t fd = argv_u(kv, nkv, "fd", -1);
		int d = fd < 256 ? S.fddev[proc][fd] : -1;
		if (d >= 0)
			S.maps[S.nmaps++] = (struct mapping){ proc, ret, argv_u(kv, nkv, "length", 0), argv_u(kv, nkv, "offset", 0), d };
	}
	if (ok && !strcmp(op, "fork")) {
		int child = proc_index(arg(kv, nkv, "as"));
		pids[child] = (pid_t)ret;
		alive[child] = 1;
		/* the child has the parent's fds and mappings at the same numbers and addresses */
		memcpy(S.fddev[child], S.fddev[proc], sizeof(S.fddev[proc]));
		for (int i = 0, m = S.nmaps; i < m && S.nmaps < 256; i++)
			if (S.maps[i].proc == proc) {
				S.maps[S.nmaps] = S.maps[i];
				S.maps[S.nmaps++].proc = child;
			}
	}
	if (!strcmp(op, "exit") && !err)
		alive[proc] = 0;
	if (dirty_w && !err)
		add_dirty(dirty_dev, dirty_off, dirty_w);
	return 0;
}

/* After a scenario: make every device as the next one expects it (memory decode on, the bytes the
 * scenario wrote back to zero), with every worker gone so that the groups can be opened again. */
static void cleanup_devices(void)
{
	for (int d = 0; d < S.ndev; d++) {
		int has = 0;
		for (int i = 0; i < S.ndirty; i++)
			has |= S.dirty[i].dev == d;
		if (!has)
			continue;
		int fd = open_group_device(S.dev[d].group, S.dev[d].bdf);
		if (fd < 0) {
			fprintf(stderr, "vfio-sim-exec: cleanup of %s: open: %s\n", S.dev[d].name, strerror(-fd));
			continue;
		}
		uint16_t cmd = 0;
		if (pread(fd, &cmd, 2, CONFIG_OFFSET + 4) == 2) {
			cmd |= 2;
			if (pwrite(fd, &cmd, 2, CONFIG_OFFSET + 4) != 2)
				fprintf(stderr, "vfio-sim-exec: cleanup of %s: COMMAND: %s\n", S.dev[d].name, strerror(errno));
		}
		uint64_t zero = 0;
		for (int i = 0; i < S.ndirty; i++)
			if (S.dirty[i].dev == d && pwrite(fd, &zero, S.dirty[i].width, S.dirty[i].off) != S.dirty[i].width)
				fprintf(stderr, "vfio-sim-exec: cleanup of %s at 0x%" PRIx64 ": %s\n", S.dev[d].name, S.dirty[i].off, strerror(errno));
		close(fd);
	}
	for (int g = 0; g < 64; g++)
		if (w_groups[g] > 0) {
			close(w_groups[g]);
			w_groups[g] = 0;
		}
	if (w_container >= 0)
		close(w_container);
	w_container = -1;
	w_iommu_set = 0;
}

static void end_scenario(void)
{
	for (int i = 0; i < S.nproc; i++)
		if (alive[i] && write(P[i].cmd[1], "quit\n", 5) < 0)
			alive[i] = 0;
	/* reap every worker (the driver is their subreaper) */
	for (int t = 0; t < 200; t++) {
		int left = 0;
		pid_t w;
		while ((w = waitpid(-1, NULL, WNOHANG)) > 0)
			for (int i = 0; i < S.nproc; i++)
				if (pids[i] == w)
					pids[i] = 0;
		for (int i = 0; i < S.nproc; i++)
			if (pids[i] > 0)
				left++;
		if (!left)
			break;
		if (t == 150)
			for (int i = 0; i < S.nproc; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
		usleep(20000);
	}
	for (int i = 0; i < S.nproc; i++) {
		close(P[i].cmd[0]);
		close(P[i].cmd[1]);
		close(P[i].res[0]);
		close(P[i].res[1]);
	}
	cleanup_devices();
}

/* The device's IOMMU group number and binding to vfio-pci. */
static void bind_device(struct device *d, char *bars)
{
	char path[256], link[256], buf[64], res[2048];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", d->bdf);
	if (read_file(path, buf, sizeof(buf)) < 0)
		die("device %s: no PCI function %s", d->name, d->bdf);
	unsigned v = (unsigned)strtoul(buf, NULL, 0);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", d->bdf);
	read_file(path, buf, sizeof(buf));
	unsigned dv = (unsigned)strtoul(buf, NULL, 0);
	if (v != d->vendor || dv != d->device)
		die("device %s: %s is %04x:%04x, the program expects %04x:%04x", d->name, d->bdf, v, dv, d->vendor, d->device);
	/* each BAR the scenario relies on, with the size it expects (sysfs resource: start end flags) */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", d->bdf);
	read_file(path, res, sizeof(res));
	for (char *save, *b = strtok_r(bars, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
		int idx = atoi(b);
		unsigned long long want = strtoull(strchr(b, ':') ? strchr(b, ':') + 1 : "0", NULL, 0), start = 0, end = 0;
		char *l = res;
		for (int i = 0; i < idx && l; i++)
			l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL;
		if (!l || sscanf(l, "%llx %llx", &start, &end) != 2 || !end || end - start + 1 != want)
			die("device %s (%s): BAR%d is 0x%llx bytes, the program expects 0x%llx", d->name, d->bdf, idx, end ? end - start + 1 : 0, want);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", d->bdf);
	ssize_t l = readlink(path, link, sizeof(link) - 1);
	link[l > 0 ? l : 0] = 0;
	if (!strstr(link, "vfio-pci")) {
		if (l > 0) {
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", d->bdf);
			write_file(path, d->bdf, 0);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", d->bdf);
		write_file(path, "vfio-pci", 0);
		write_file("/sys/bus/pci/drivers_probe", d->bdf, 0);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", d->bdf);
	l = readlink(path, link, sizeof(link) - 1);
	if (l <= 0)
		die("device %s (%s): no IOMMU group (is the IOMMU on?)", d->name, d->bdf);
	link[l] = 0;
	d->group = atoi(strrchr(link, '/') + 1);
}

int main(int argc, char **argv)
{
	static char line[LINE];
	int probe = 1;
	if (argc > 1 && !strcmp(argv[1], "--no-probe")) {
		probe = 0;
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: vfio-sim-exec [--no-probe] PROGRAM [OUTPUT]\n");
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in)
		die("%s: %s", argv[1], strerror(errno));
	out = argc > 2 ? fopen(argv[2], "w") : stdout;
	if (!out)
		die("%s: %s", argv[2], strerror(errno));
	setvbuf(out, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* forked workers are the driver's grandchildren: reap them here, not in init */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (probe)
		probe_setup();
	char uts[256] = "";
	read_file("/proc/sys/kernel/osrelease", uts, sizeof(uts));
	uts[strcspn(uts, "\n")] = 0;
	fprintf(out, "{\"executor\":\"vfio-sim-exec\",\"kernel\":\"%s\",\"fault_probe\":%s}\n", uts, have_probe ? "true" : "false");
	int in_scn = 0;
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "scenario ", 9)) {
			memset(&S, 0, sizeof(S));
			memset(pids, 0, sizeof(pids));
			memset(alive, 0, sizeof(alive));
			memset(S.fddev, 0xff, sizeof(S.fddev));
			snprintf(S.name, sizeof(S.name), "%.255s", line + 9);
			char nm[512];
			json_str(nm, sizeof(nm), S.name);
			fprintf(out, "{\"scenario\":\"%s\"}\n", nm);
			in_scn = 1;
		} else if (!strncmp(line, "proc ", 5) && in_scn) {
			/* proc NAME forked|start */
			char name[MAXNAME], how[16];
			if (sscanf(line + 5, "%63s %15s", name, how) != 2 || S.nproc == MAXPROC)
				die("bad proc line: %s", line);
			snprintf(S.procs[S.nproc], MAXNAME, "%s", name);
			S.forked[S.nproc++] = !strcmp(how, "forked");
		} else if (!strncmp(line, "device ", 7) && in_scn) {
			/* device NAME BDF VENDOR DEVICE [BAR:SIZE,…] */
			struct device *d = &S.dev[S.ndev];
			char bars[256] = "";
			if (S.ndev == MAXDEV || sscanf(line + 7, "%63s %31s %x %x %255s", d->name, d->bdf, &d->vendor, &d->device, bars) < 4)
				die("bad device line: %s", line);
			bind_device(d, bars);
			S.ndev++;
		} else if (!strcmp(line, "start") && in_scn) {
			for (int i = 0; i < S.nproc; i++)
				if (pipe(P[i].cmd) || pipe(P[i].res))
					die("pipe: %s", strerror(errno));
			for (int i = 0; i < S.nproc; i++)
				if (!S.forked[i])
					start_worker(i, -1);
		} else if (!strncmp(line, "step ", 5) && in_scn) {
			run_step(line);
		} else if (!strcmp(line, "end") && in_scn) {
			end_scenario();
			char nm[512];
			json_str(nm, sizeof(nm), S.name);
			fprintf(out, "{\"end\":\"%s\"}\n", nm);
			fflush(out);
			in_scn = 0;
		} else if (line[0] && line[0] != '#')
			die("unexpected line: %s", line);
	}
	fprintf(out, "{\"done\":true}\n");
	fflush(out);
	if (out != stdout)
		fsync(fileno(out));
	return 0;
}
