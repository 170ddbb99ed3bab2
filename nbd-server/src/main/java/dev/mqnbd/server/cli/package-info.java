/** The {@code mqnbd} command line: {@code mqnbd serve} and its options, parsed with Picocli. */
@NullMarked
package dev.mqnbd.server.cli;

import org.jspecify.annotations.NullMarked;
