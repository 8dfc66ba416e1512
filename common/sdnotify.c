/*
 * common/sdnotify.c - the service manager's readiness protocol without
 * libsystemd: a datagram with "READY=1" (or "STOPPING=1") to the unix socket
 * named by $NOTIFY_SOCKET, as sd_notify(3) describes. systemd sets the
 * variable for a unit of Type=notify; elsewhere it is unset and nothing is
 * sent.
 */
#include "am.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void am_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
        am_log(AM_LOG_WARN, "notify_failed", "snotify_socket", path, "smessage",
               "NOTIFY_SOCKET is not a unix socket path or @abstract name", NULL);
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is exactly n bytes */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        am_log(AM_LOG_WARN, "notify_failed", "snotify_socket", path, "sstate", state, "serror",
               strerror(errno), NULL);
    if (fd >= 0)
        close(fd);
}
