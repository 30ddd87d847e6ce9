/* The pod's network namespace, for processes the cluster-in-a-box runs (LD_PRELOAD).
 *
 * In a pod, a server that listens on the wildcard address (0.0.0.0 or ::) listens on the pod's own IP.
 * Here every pod shares the host's network, so this shim rewrites a wildcard bind() to the pod's
 * loopback address (CLUSTER_BOX_POD_IP, e.g. 127.42.0.7): two replicas can both listen on :8080, and
 * nothing else on the machine is exposed. IPv6 wildcard binds (dual-stack sockets, as gRPC makes them)
 * become the IPv4-mapped pod address. Every other bind() is passed through unchanged.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *ip = getenv("CLUSTER_BOX_POD_IP");
    struct in_addr pod;
    if (!ip || !addr || inet_pton(AF_INET, ip, &pod) != 1) return real_bind(fd, addr, len);
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in copy;
        memcpy(&copy, addr, sizeof copy);
        if (copy.sin_addr.s_addr == htonl(INADDR_ANY)) {
            copy.sin_addr = pod;
            return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
        }
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 copy;
        memcpy(&copy, addr, sizeof copy);
        if (IN6_IS_ADDR_UNSPECIFIED(&copy.sin6_addr)) {
            memset(&copy.sin6_addr, 0, sizeof copy.sin6_addr);
            copy.sin6_addr.s6_addr[10] = 0xff;
            copy.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&copy.sin6_addr.s6_addr[12], &pod, 4);
            return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
        }
    }
    return real_bind(fd, addr, len);
}
