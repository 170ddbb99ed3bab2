/**
 * The kernel's NBD client against the server: this machine's kernel has no {@code nbd} module, so
 * {@code nbd-client} runs in a {@code qemu-system-x86_64} guest (software emulation) booted from Debian's
 * kernel with a small initramfs ({@code scripts/images/build vm}). The guest reaches the in-process server
 * at 10.0.2.2 through user-mode networking, runs a shell script the test appends to its initramfs, and
 * reports on the serial console ({@code RESULT ok} or {@code RESULT fail: why}).
 */
package dev.mqnbd.it.vm;
