package dev.mqnbd.it.container;

import org.testcontainers.images.ImagePullPolicy;
import org.testcontainers.utility.DockerImageName;

/**
 * The image pull policy of every container test: never pull. No registry can be reached from these
 * machines, and every image the tests use is built locally by {@code scripts/images/build}, so a
 * missing image must fail at once instead of hanging on a pull. Named in it-tests/pom.xml
 * ({@code TESTCONTAINERS_PULL_POLICY}) and set on each container as well.
 */
public final class NeverPull implements ImagePullPolicy {
    @Override
    public boolean shouldPull(DockerImageName imageName) {
        return false;
    }
}
