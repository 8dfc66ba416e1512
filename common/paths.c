/*
 * common/paths.c - default locations of the data alertmap reads: the
 * mappings directory and the SQL migrations.
 *
 * meson bakes four absolute paths into this file (common/meson.build): the
 * source tree, the build tree, the installed data directory
 * (DATADIR/alertmap) and the installed configuration directory
 * (SYSCONFDIR/alertmap). A program whose own executable (/proc/self/exe)
 * lies inside the build tree it was built in reads the source tree; any
 * other copy (an installed one) reads the installed directories. (A
 * DESTDIR inside the build tree therefore counts as the build tree: stage
 * packages elsewhere.)
 */
#include "am.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AM_SOURCE_ROOT
#error "common/meson.build defines AM_SOURCE_ROOT, AM_BUILD_ROOT, AM_DATADIR and AM_SYSCONFDIR"
#endif

#define OPERATOR_MAPPINGS AM_SYSCONFDIR "/mappings"

/* True when path is dir itself or lies below it. */
static bool is_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

bool am_running_from_build_tree(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return false; /* no /proc: take the installed locations */
    exe[n] = '\0';
    if (is_below(exe, AM_BUILD_ROOT))
        return true;
    /* the build tree may have been configured through a symbolic link */
    char *real = realpath(AM_BUILD_ROOT, NULL);
    bool below = real != NULL && is_below(exe, real);
    free(real);
    return below;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *am_default_path(am_path_kind_t kind, const char **origin)
{
    const char *why = "";
    const char *path = "";
    bool build = am_running_from_build_tree();
    switch (kind) {
    case AM_PATH_MAPPINGS:
        if (build) {
            path = AM_SOURCE_ROOT "/mappings";
            why = "source tree (running from the build tree)";
        } else if (is_dir(OPERATOR_MAPPINGS)) {
            path = OPERATOR_MAPPINGS;
            why = "operator directory (it exists, so the shipped mappings are not read)";
        } else {
            path = AM_DATADIR "/mappings";
            why = "shipped mappings (no " OPERATOR_MAPPINGS ")";
        }
        break;
    case AM_PATH_SHIPPED_MAPPINGS:
        path = AM_DATADIR "/mappings";
        why = "shipped mappings";
        break;
    case AM_PATH_OPERATOR_MAPPINGS:
        path = OPERATOR_MAPPINGS;
        why = "operator directory";
        break;
    case AM_PATH_SQL:
        path = build ? AM_SOURCE_ROOT "/schemas/sql" : AM_DATADIR "/schemas/sql";
        why = build ? "source tree (running from the build tree)" : "installed migrations";
        break;
    }
    if (origin != NULL)
        *origin = why;
    return path;
}
