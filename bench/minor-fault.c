/*
 * bench/minor-fault.c: the Linux minor-fault rate on this machine, for comparison with the
 * simulated fault path of vfio-sim.
 *
 *   minor-fault PATH NPAGES [read|write|both] [REPS]
 *
 * Creates PATH with NPAGES pages (written with write(2), then read back with read(2), so every
 * page is in the page cache before timing), and then, per mode, REPS times: mmap it MAP_SHARED,
 * madvise(MADV_RANDOM), touch one byte per page in address order, and report the minor faults
 * (getrusage ru_minflt delta), major faults and wall time of the touch loop; munmap.
 * Removes PATH at the end. One JSON object per repetition on stdout. Default: both, 3 reps.
 *
 * "read" touches with a load; note that MADV_RANDOM only turns off readahead: read fault-around
 * (fault_around_bytes, 64 KiB by default) still maps up to 16 page-cache pages per fault, which
 * shows as ru_minflt < NPAGES. "write" touches with a store: a write fault on a shared file
 * mapping (do_shared_fault) never faults around, so it is one fault per page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "minor-fault: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s PATH NPAGES [read|write|both] [REPS]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	const size_t npages = strtoull(argv[2], NULL, 0);
	const char *modes = argc > 3 ? argv[3] : "both";
	const int do_read = strcmp(modes, "read") == 0 || strcmp(modes, "both") == 0;
	const int do_write = strcmp(modes, "write") == 0 || strcmp(modes, "both") == 0;
	const int reps = argc > 4 ? atoi(argv[4]) : 3;
	if ((!do_read && !do_write) || reps < 1 || npages == 0) {
		fprintf(stderr, "minor-fault: bad arguments\n");
		return 2;
	}
	const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	const size_t len = npages * pg;

	/* create and fill the file, then read it back: page-cache resident */
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) die("open");
	const size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	if (!buf) die("malloc");
	memset(buf, 0x5a, chunk);
	double t0 = now();
	for (size_t done = 0; done < len;) {
		size_t n = len - done < chunk ? len - done : chunk;
		ssize_t w = write(fd, buf, n);
		if (w < 0) die("write");
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) die("lseek");
	uint64_t sum = 0;
	for (;;) {
		ssize_t r = read(fd, buf, chunk);
		if (r < 0) die("read");
		if (r == 0) break;
		sum += (unsigned char)buf[0];
	}
	double prep = now() - t0;

	for (int pass = 0; pass < 2 * reps; pass++) {
		const int write_mode = pass >= reps, rep = pass % reps;
		if (write_mode ? !do_write : !do_read) continue;
		char *p = mmap(NULL, len, PROT_READ | (write_mode ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) die("mmap");
		if (madvise(p, len, MADV_RANDOM)) die("madvise(MADV_RANDOM)");
		struct rusage a, b;
		getrusage(RUSAGE_SELF, &a);
		double s = now();
		if (write_mode)
			for (size_t i = 0; i < npages; i++) ((volatile char *)p)[i * pg] = 1;
		else
			for (size_t i = 0; i < npages; i++) sum += ((volatile char *)p)[i * pg];
		double e = now();
		getrusage(RUSAGE_SELF, &b);
		long minflt = b.ru_minflt - a.ru_minflt, majflt = b.ru_majflt - a.ru_majflt;
		double secs = e - s;
		printf("{\"mode\":\"%s\",\"rep\":%d,\"pages\":%zu,\"page_size\":%zu,\"prep_s\":%.6f,\"seconds\":%.6f,"
		       "\"minflt\":%ld,\"majflt\":%ld,\"faults_per_s\":%.1f,\"pages_per_s\":%.1f,\"maxrss_kib\":%ld,\"checksum\":%llu}\n",
		       write_mode ? "write" : "read", rep, npages, pg, prep, secs, minflt, majflt,
		       secs > 0 ? minflt / secs : 0.0, secs > 0 ? npages / secs : 0.0, b.ru_maxrss, (unsigned long long)(sum & 0xff));
		fflush(stdout);
		if (munmap(p, len)) die("munmap");
	}
	close(fd);
	if (unlink(path)) die("unlink");
	free(buf);
	return 0;
}
