package dev.mqnbd.it.container;

/** The two generations of client tools, each an image built by {@code scripts/images/build clients}. */
public enum ClientImage {
    /** Debian bookworm: libnbd 1.14, qemu 7.2, fio 3.33. */
    BOOKWORM("mqnbd-client:bookworm", "libnbd 1.14.", "qemu-img version 7.2.", "fio-3.33"),
    /** Debian trixie: libnbd 1.22, qemu 10.0, fio 3.39, nbdkit 1.42. */
    TRIXIE("mqnbd-client:trixie", "libnbd 1.22.", "qemu-img version 10.0.", "fio-3.39");

    private final String image;
    private final String libnbd;
    private final String qemu;
    private final String fio;

    ClientImage(String image, String libnbd, String qemu, String fio) {
        this.image = image;
        this.libnbd = libnbd;
        this.qemu = qemu;
        this.fio = fio;
    }

    public String image() {
        return image;
    }

    /** Returns the version lines ({@code nbdinfo --version}, {@code qemu-img --version}, {@code fio --version}) expected. */
    public String[] versions() {
        return new String[] {libnbd, qemu, fio};
    }

    /** Returns a short lower-case name, used in export names. */
    public String shortName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
