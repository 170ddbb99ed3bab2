/**
 * Test support shared by the modules' test suites, never by main code: {@link
 * dev.mqnbd.testsupport.NettyLeakExtension} turns a Netty leak report into a test failure.
 */
@NullMarked
package dev.mqnbd.testsupport;

import org.jspecify.annotations.NullMarked;
