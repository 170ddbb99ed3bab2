package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.jspecify.annotations.Nullable;

/**
 * Who holds a write lease, as its object records it.
 *
 * <pre>
 * {"holder": "mqnbd on host1, pid 4242, lease 9f0c2a17", "host": "host1", "pid": 4242,
 *  "machine": "5b1e...-boot/pid:[4026531836]", "expires": 1795129200000,
 *  "expiresAt": "2026-11-21T21:00:00Z", "ttlMillis": 30000}
 * </pre>
 *
 * <p>A released lease keeps its object, rewritten with {@code "releasedAt"} (the release time, also its
 * {@code expires}) and without {@code ttlMillis}: the next server takes it over at once. Releasing by a
 * conditional PUT rather than a conditional DELETE is deliberate: Ceph's RADOS Gateway ignores {@code
 * If-Match} on DELETE, so a conditional delete could remove a lease another server had just taken.
 *
 * <p>{@code holder} names the holder for people and, with its random lease id, identifies one lease of
 * one process: a lease object that still carries our {@code holder} was last written by us. {@code
 * machine} is the kernel's boot id and the holder's pid namespace: where it equals ours, {@code pid} is a
 * process this server can look up, so a lease of a process that no longer runs (a crash) can be taken
 * over at once instead of after its lifetime. Objects written before these fields existed parse with no
 * machine, and are never taken over early.
 *
 * @param name the holder string, unique per lease
 * @param host the host name
 * @param pid the holder's process id
 * @param machine the boot id and pid namespace, or {@code null} where unknown
 */
record LeaseHolder(
        String name, String host, long pid, @Nullable String machine) {
    private static final @Nullable String LOCAL_MACHINE = localMachine();

    /** Returns a new holder for this process, with a fresh random lease id. */
    static LeaseHolder local() {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            host = "unknown-host";
        }
        byte[] id = new byte[4];
        ThreadLocalRandom.current().nextBytes(id);
        long pid = ProcessHandle.current().pid();
        String name = "mqnbd on " + host + ", pid " + pid + ", lease "
                + HexFormat.of().formatHex(id);
        return new LeaseHolder(name, host, pid, LOCAL_MACHINE);
    }

    /** Returns the lease object's bytes: this holder, with {@code ttl} from now as its expiry. */
    byte[] record(Duration ttl) {
        return record(Instant.now().plus(ttl), ttl);
    }

    /**
     * Returns the bytes of this holder's released lease object: expired now and marked {@code
     * releasedAt}, so that the next server takes it over at once, whatever its clock says.
     */
    byte[] releasedRecord() {
        return record(Instant.now(), null);
    }

    private byte[] record(Instant expires, @Nullable Duration ttl) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("holder", name);
        fields.put("host", host);
        fields.put("pid", pid);
        if (machine != null) {
            fields.put("machine", machine);
        }
        fields.put("expires", expires.toEpochMilli());
        fields.put("expiresAt", expires.toString());
        if (ttl != null) {
            fields.put("ttlMillis", ttl.toMillis());
        } else {
            fields.put("releasedAt", expires.toString());
        }
        return FlatJson.write(fields).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Returns whether this holder was a process on this machine (same boot, same pid namespace), other
     * than this one, that no longer runs: its lease cannot be renewed any more. A reused pid answers
     * false, which only costs a wait for the lease to expire.
     */
    boolean deadHere() {
        return machine != null
                && machine.equals(LOCAL_MACHINE)
                && pid > 0
                && pid != ProcessHandle.current().pid()
                && ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true);
    }

    /**
     * What a lease object says. An unreadable one names itself and counts as unexpired.
     *
     * @param holder who took the lease
     * @param expires when it expires unless renewed
     * @param released whether its holder released it ({@link #releasedRecord})
     */
    record Held(LeaseHolder holder, Instant expires, boolean released) {
        static Held parse(byte[] json) {
            try {
                Map<String, String> fields = FlatJson.read(new String(json, StandardCharsets.UTF_8));
                String pid = fields.get("pid");
                return new Held(
                        new LeaseHolder(
                                fields.getOrDefault("holder", "an unnamed holder"),
                                fields.getOrDefault("host", ""),
                                pid == null ? -1 : Long.parseLong(pid),
                                fields.get("machine")),
                        Instant.ofEpochMilli(Long.parseLong(fields.get("expires"))),
                        fields.containsKey("releasedAt"));
            } catch (RuntimeException e) {
                return new Held(
                        new LeaseHolder(
                                "an unreadable lease object (delete it by hand if no server uses the export)",
                                "",
                                -1,
                                null),
                        Instant.MAX,
                        false);
            }
        }

        /** Returns whether the lease was released, or is past its expiry by this server's clock. */
        boolean expired() {
            return released || !expires.isAfter(Instant.now());
        }
    }

    /** The boot id and pid namespace of this process, or {@code null} off Linux. */
    private static @Nullable String localMachine() {
        try {
            String boot =
                    Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).strip();
            String namespace =
                    Files.readSymbolicLink(Path.of("/proc/self/ns/pid")).toString();
            return boot.isEmpty() ? null : boot + "/" + namespace;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
