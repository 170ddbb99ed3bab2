/**
 * Test support shared by the modules' test suites, never by main code: {@link
 * dev.mqnbd.testsupport.NettyLeakExtension} turns a Netty leak report into a test failure.
 */
package dev.mqnbd.testsupport;
