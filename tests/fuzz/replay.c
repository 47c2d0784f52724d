/* replay.c - a main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on every file named on the command line, and on every regular file in every
 * directory named there (not recursive, in name order).
 *
 * Used by ctest to replay the seed corpus and by hand to replay a crash input with any
 * compiler. Knows nothing about the targets; must not include smtphook headers. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_PATH_MAX 4096 /* longest path built from a directory and a file name */

/* replay_file - read one file into an allocation of exactly its size (so that ASan sees any
 * read past the end) and run the target on it. Returns 0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
    int rc = -1;
    unsigned char *data = NULL;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        perror(path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || st.st_size < 0) {
        perror(path);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    data = malloc(size ? size : 1);
    if (data == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        goto done;
    }
    if (size > 0 && fread(data, 1, size, fp) != size) {
        fprintf(stderr, "%s: short read\n", path);
        goto done;
    }
    LLVMFuzzerTestOneInput(data, size);
    rc = 0;
done:
    free(data);
    fclose(fp);
    return rc;
}

/* replay_dir - every regular file in a directory, in name order. Returns the number of
 * inputs run, or -1 on an error. */
static long replay_dir(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char path[REPLAY_PATH_MAX];
        struct stat st;
        int k = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (count >= 0 && k > 0 && (size_t)k < sizeof(path) && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            count = replay_file(path) == 0 ? count + 1 : -1;
        free(names[i]);
    }
    free(names);
    return count;
}

/* main - replay every argument; fails when an argument cannot be read or nothing ran. */
int main(int argc, char **argv)
{
    long total = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        long n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replayed %ld input%s\n", total, total == 1 ? "" : "s");
    return total > 0 ? 0 : 1;
}
