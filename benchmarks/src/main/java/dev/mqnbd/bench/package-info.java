/**
 * JMH microbenchmarks of mqnbd's hot paths, in a module of their own that is never deployed and that
 * the build only compiles: {@link dev.mqnbd.bench.DispatchBenchmark} (mq-core's dispatch path with a
 * driver that ends requests inline), {@link dev.mqnbd.bench.TagSetBenchmark} (a tag's get/put cycle),
 * {@link dev.mqnbd.bench.RequestDecoderBenchmark} and {@link dev.mqnbd.bench.ReplyEncoderBenchmark}
 * (the NBD codec), and {@link dev.mqnbd.bench.MemoryBackendBenchmark} (4 KiB reads and writes of the
 * memory backend through its queue).
 *
 * <p>Run them from the shaded jar with a JDK 25:
 *
 * <pre>
 * ./mvnw -B -q -DskipTests -pl benchmarks -am package
 * java -jar benchmarks/target/benchmarks.jar                        # everything, a few minutes
 * java -jar benchmarks/target/benchmarks.jar Dispatch -prof gc      # one class, with allocation per op
 * java -jar benchmarks/target/benchmarks.jar -f 1 -wi 1 -i 2 -r 1s  # a quick look
 * </pre>
 *
 * <p>Results are reported; they never gate the build. Every benchmark runs on one thread: the executors
 * here run each hardware context's work on the caller, which is only sound with one caller per context.
 */
@NullMarked
package dev.mqnbd.bench;

import org.jspecify.annotations.NullMarked;
