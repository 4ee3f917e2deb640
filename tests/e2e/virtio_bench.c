// virtio_bench: the measuring programs of tests/e2e/bench_virtio.sh, built static by scripts/bench-virtio.sh
// and used both in the guest and in the sandbox:
//   virtio_bench randread DEVICE SECONDS   4 KiB O_DIRECT reads at random aligned offsets, one at a time
//   virtio_bench tcpsend IP PORT MIB       connect and send MIB MiB of zeros
//   virtio_bench tcprecv PORT              accept one connection, read to EOF, report the rate measured
//                                          from the first byte to EOF
//   virtio_bench now                       CLOCK_MONOTONIC in seconds (busybox date has no %N), to time dd
// Each prints one "KITE-BENCH ..." line with its result.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char* what) {
    perror(what);
    return 1;
}

static int randread(const char* device, double seconds) {
    int fd = open(device, O_RDONLY | O_DIRECT);
    if (fd < 0) return die(device);
    uint64_t size = 0;
    struct stat st;
    if (ioctl(fd, BLKGETSIZE64, &size) < 0) size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    uint64_t blocks = size / 4096;
    if (blocks == 0) return die("device smaller than 4 KiB");
    void* buf = NULL;
    if (posix_memalign(&buf, 4096, 4096) != 0) return die("posix_memalign");
    uint64_t x = 88172645463325252ULL, reads = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
            if (pread(fd, buf, 4096, (off_t)((x % blocks) * 4096)) != 4096) return die("pread");
            reads++;
        }
        t = now();
    }
    printf("KITE-BENCH randread reads=%llu seconds=%.3f iops=%.0f\n", (unsigned long long)reads, t - start,
           (double)reads / (t - start));
    return 0;
}

static int tcpsend(const char* ip, int port, long mib) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, ip, &addr.sin_addr) != 1) return die("socket or address");
    if (connect(fd, (struct sockaddr*)&addr, sizeof addr) < 0) return die("connect");
    static char buf[65536];
    double start = now();
    for (long i = 0; i < mib * 16; i++) {
        for (size_t done = 0; done < sizeof buf;) {
            ssize_t n = write(fd, buf + done, sizeof buf - done);
            if (n <= 0) return die("write");
            done += (size_t)n;
        }
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof buf) > 0) {
    }
    double t = now() - start;
    printf("KITE-BENCH tcpsend bytes=%ld seconds=%.3f mbps=%.1f\n", mib << 20, t, (double)mib * 1.048576 / t);
    return 0;
}

static int tcprecv(int port) {
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (lfd < 0) return die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(lfd, 1) < 0) return die("bind/listen");
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) return die("accept");
    static char buf[262144];
    long long bytes = 0;
    double start = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) return die("read");
        if (n == 0) break;
        if (bytes == 0) start = now();
        bytes += n;
    }
    double t = now() - start;
    printf("KITE-BENCH tcprecv bytes=%lld seconds=%.3f mbps=%.1f\n", bytes, t, t > 0 ? (double)bytes / 1e6 / t : 0.0);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && strcmp(argv[1], "randread") == 0) return randread(argv[2], atof(argv[3]));
    if (argc == 5 && strcmp(argv[1], "tcpsend") == 0) return tcpsend(argv[2], atoi(argv[3]), atol(argv[4]));
    if (argc == 3 && strcmp(argv[1], "tcprecv") == 0) return tcprecv(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "now") == 0) return printf("%.6f\n", now()) < 0;
    fprintf(stderr, "usage: virtio_bench randread DEVICE SECONDS | tcpsend IP PORT MIB | tcprecv PORT | now\n");
    return 2;
}
