#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static qat_status write_all(int fd, const char *path, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return qat_error_set(QAT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += n;
        size -= (size_t)n;
    }
    return QAT_OK;
}

/* Makes a completed rename survive a power cut. Some file systems cannot
 * fsync a directory (EINVAL) and do not need to; that is not a failure. */
static qat_status sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = qat_xstrdup(".");
    } else if (slash == path) {
        dir = qat_xstrdup("/");
    } else {
        size_t n = (size_t)(slash - path);
        dir = qat_xmalloc(n + 1);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    qat_status st = QAT_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        st = qat_error_set(QAT_ERR_IO, "%s: written, but cannot open directory %s to sync it: %s",
                           path, dir, strerror(errno));
    } else {
        if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
            st = qat_error_set(QAT_ERR_IO, "%s: written, but syncing directory %s failed: %s",
                               path, dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

qat_status qat_file_write_atomic(const char *path, const void *data, size_t size)
{
    QAT_ASSERT(path && (data || size == 0));
    qat_strbuf tmp = {0};
    qat_strbuf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());

    qat_status st = QAT_OK;
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        st = qat_error_set(QAT_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp.data,
                           strerror(errno));
        qat_strbuf_free(&tmp);
        return st;
    }
    st = write_all(fd, path, data, size);
    if (st == QAT_OK && fsync(fd) != 0)
        st = qat_error_set(QAT_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    /* close() can report a deferred write error (NFS, quota). */
    if (close(fd) != 0 && st == QAT_OK)
        st = qat_error_set(QAT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (st == QAT_OK && rename(tmp.data, path) != 0)
        st = qat_error_set(QAT_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp.data,
                           strerror(errno));
    if (st != QAT_OK) {
        unlink(tmp.data);
        qat_strbuf_free(&tmp);
        return st;
    }
    qat_strbuf_free(&tmp);
    return sync_parent_dir(path);
}

qat_status qat_file_read_all(const char *path, void **data, size_t *size)
{
    QAT_ASSERT(path && data && size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        qat_status st = qat_error_set(QAT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return qat_error_set(QAT_ERR_IO, "%s: is a directory, expected a file", path);
    }
    /* The size from stat is only a hint: pipes report 0 and files can grow
     * while being read, so read until EOF. */
    size_t cap = (S_ISREG(sb.st_mode) && sb.st_size > 0) ? (size_t)sb.st_size + 1 : 4096;
    size_t len = 0;
    char *buf = qat_xmalloc(cap);
    for (;;) {
        char probe;
        char *dst = buf + len;
        size_t room = cap - 1 - len;
        if (room == 0) {
            /* Full at the size stat reported: check for EOF before doubling
             * the buffer, which would otherwise happen for every file. */
            dst = &probe;
            room = 1;
        }
        ssize_t n = read(fd, dst, room);
        if (n < 0) {
            if (errno == EINTR) continue;
            qat_status st = qat_error_set(QAT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return st;
        }
        if (n == 0) break;
        if (dst == &probe) {
            cap *= 2;
            buf = qat_xrealloc(buf, cap);
            buf[len] = probe;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return QAT_OK;
}

static qat_status mkdir_one(const char *whole, const char *dir)
{
    if (mkdir(dir, 0777) == 0) return QAT_OK;
    int err = errno;
    struct stat sb;
    if (err == EEXIST) {
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return QAT_OK;
        if (strcmp(whole, dir) == 0)
            return qat_error_set(QAT_ERR_IO, "%s: exists and is not a directory", whole);
        return qat_error_set(QAT_ERR_IO, "%s: cannot create: %s exists and is not a directory",
                             whole, dir);
    }
    if (strcmp(whole, dir) == 0)
        return qat_error_set(QAT_ERR_IO, "%s: cannot create directory: %s", whole, strerror(err));
    return qat_error_set(QAT_ERR_IO, "%s: cannot create directory %s: %s", whole, dir,
                         strerror(err));
}

qat_status qat_mkdir_p(const char *path)
{
    QAT_ASSERT(path);
    if (path[0] == '\0') return qat_error_set(QAT_ERR_INVALID, "mkdir: empty directory path");
    char *p = qat_xstrdup(path);
    qat_status st = QAT_OK;
    /* Create each prefix that ends before a '/', then the whole path;
     * repeated and trailing slashes give prefixes that already exist. */
    for (char *s = p + 1; *s && st == QAT_OK; s++) {
        if (*s != '/' || s[-1] == '/') continue;
        *s = '\0';
        st = mkdir_one(path, p);
        *s = '/';
    }
    if (st == QAT_OK) st = mkdir_one(path, p);
    free(p);
    return st;
}

static void strbuf_reserve(qat_strbuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    QAT_ASSERT(need > sb->len);
    if (need <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    sb->data = qat_xrealloc(sb->data, cap);
    sb->cap = cap;
}

void qat_strbuf_init(qat_strbuf *sb)
{
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

void qat_strbuf_append(qat_strbuf *sb, const char *s, size_t n)
{
    strbuf_reserve(sb, n);
    if (n) memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void qat_strbuf_append_str(qat_strbuf *sb, const char *s) { qat_strbuf_append(sb, s, strlen(s)); }

void qat_strbuf_putc(qat_strbuf *sb, char c) { qat_strbuf_append(sb, &c, 1); }

void qat_strbuf_printf(qat_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    QAT_ASSERT_MSG(n >= 0, "bad format string");
    strbuf_reserve(sb, (size_t)n);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    sb->len += (size_t)n;
}

void qat_strbuf_clear(qat_strbuf *sb)
{
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

void qat_strbuf_free(qat_strbuf *sb)
{
    free(sb->data);
    qat_strbuf_init(sb);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 ? 0 : errno;
}

qat_status qat_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return QAT_OK;
        return qat_error_set(QAT_ERR_IO, "%s: %s", path, strerror(errno));
    }
    int err = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (err != 0) return qat_error_set(QAT_ERR_IO, "%s: cannot remove: %s", path, strerror(err > 0 ? err : errno));
    return QAT_OK;
}
