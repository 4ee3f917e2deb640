// console-drain (guest, /bin/console-drain): waits until everything written to the console has left the
// guest's UART or hvc, then returns. rcS runs it between a test's last line and `poweroff -f`: a tty
// write only queues the bytes, and a forced power-off does not wait for them, so without it the
// KITE-TEST-RESULT line could be lost (it was, once, in CI).
#include <fcntl.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

int main(void) {
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd < 0 || tcdrain(fd) != 0) {
        perror("console-drain");
        return 1;
    }
    return 0;
}
