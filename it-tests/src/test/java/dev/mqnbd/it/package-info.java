/**
 * End-to-end tests: the server, in-process or as the {@code mqnbd} jar, driven by real NBD clients
 * (libnbd's nbdinfo/nbdcopy/nbdsh, qemu-img, qemu-io, fio's nbd engine) installed by the test command.
 */
package dev.mqnbd.it;
