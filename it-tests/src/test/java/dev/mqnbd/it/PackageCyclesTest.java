package dev.mqnbd.it;

import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.Set;
import java.util.stream.Collectors;
import org.jspecify.annotations.NullMarked;
import org.junit.jupiter.api.Test;

/**
 * The packages of the main code form no cycle, and each is {@code @NullMarked}, so NullAway checks it: within a module, a package that uses another is not used
 * by it, directly or through others (Maven already keeps the modules one-way). This module's test
 * classpath holds the main classes of every module but the benchmarks; test classes and test jars are
 * left out.
 */
class PackageCyclesTest {
    private static final ImportOption MAIN_CODE_ONLY = location -> !location.contains("/test-classes/")
            && !location.contains("-tests.jar")
            && !location.contains("/it-tests/");

    @Test
    void mainCodeHasNoPackageCycle() {
        JavaClasses classes =
                new ClassFileImporter().withImportOption(MAIN_CODE_ONLY).importPackages("dev.mqnbd");
        Set<String> packages = classes.stream().map(JavaClass::getPackageName).collect(Collectors.toSet());
        // Not vacuous: the main code of every module on the classpath is there.
        assertThat(packages)
                .contains(
                        "dev.mqnbd.mq",
                        "dev.mqnbd.storage",
                        "dev.mqnbd.filter",
                        "dev.mqnbd.server",
                        "dev.mqnbd.server.handler",
                        "dev.mqnbd.testsupport");

        slices().matching("dev.mqnbd.(**)")
                .should()
                .beFreeOfCycles()
                .because("a package cycle ties packages that should change one at a time")
                .check(classes);
    }

    @Test
    void everyMainPackageIsNullMarked() {
        JavaClasses classes =
                new ClassFileImporter().withImportOption(MAIN_CODE_ONLY).importPackages("dev.mqnbd");
        Set<String> unmarked = classes.stream()
                .map(JavaClass::getPackageName)
                .distinct()
                .filter(name -> !classes.getPackage(name).isAnnotatedWith(NullMarked.class))
                .collect(Collectors.toSet());
        assertThat(unmarked)
                .as("main packages without @NullMarked in their package-info (NullAway skips them)")
                .isEmpty();
    }
}
