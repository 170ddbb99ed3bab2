/** The {@code mqnbd} command line: {@code mqnbd serve} and its options, parsed with Picocli. */
package dev.mqnbd.server.cli;
