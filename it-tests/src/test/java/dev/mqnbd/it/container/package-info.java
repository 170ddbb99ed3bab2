/**
 * Container tests: the {@code mqnbd} server image in its container, and the client images of two
 * Debian generations (bookworm: libnbd 1.14, qemu 7.2, fio 3.33; trixie: libnbd 1.22, qemu 10.0,
 * fio 3.39, nbdkit 1.42) in theirs, on a network the tests create. Every image is built locally by
 * {@code scripts/images/build} (see {@link dev.mqnbd.it.container.TestImages}); nothing is pulled.
 */
package dev.mqnbd.it.container;
