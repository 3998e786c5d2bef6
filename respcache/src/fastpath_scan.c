/*
 * respcache._fastpath.scan_headers: a look at each read before hiredis parses it (see below).
 * Part of the _fastpath module (fastpath.c registers it); no state of its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "fastpath.h"

/*
 * hiredis allocates an aggregate's list as soon as it reads `*N` (or `%N ~N >N |N`): for a huge
 * N that is cheap, but freeing it walks N slots, and `*2147483647` then stalled the whole
 * server for seconds (`*1\r\n>1000000000` for half a minute). Redis allocates as arguments
 * arrive. So every chunk is looked at before it is fed: each of the five type bytes is found
 * with memchr (a handful of passes over bytes already in cache), and one that starts a line
 * with a count over the limit is refused before hiredis parses it. A count split over two
 * reads is carried in the state. Bodies are not skipped: a body byte that happens to look like
 * such a header (after a newline, with a count over the limit) is refused too, which Redis
 * would not do; no real client sends that.
 *
 * state: -2 = the previous chunk ended a line (or nothing came yet), -1 = it did not, >= 0 = it
 * ended inside a header's count: (count so far) * 8 + index of the type byte in AGGREGATES.
 */
static const char AGGREGATES[] = "*%~>|";

static long long
count_digits(const char *p, const char *end, long long count, long long limit, const char **stop)
{
    while (p < end && *p >= '0' && *p <= '9' && count <= limit) {
        count = count * 10 + (*p - '0');
        p++;
    }
    *stop = p;
    return count;
}

const char fastpath_scan_headers_doc[] =
"scan_headers(data, state, limit) -> (offset, type_byte, state)\n"
"\n"
"The offset in `data` of the first aggregate header whose count is over `limit` (-1: none;\n"
"0 also when it began in an earlier chunk), its type byte, and the state for the next chunk.";

PyObject *
fastpath_scan_headers(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    const char *data, *end, *stop, *p;
    Py_ssize_t len, bad = -1;
    long long state, next_state, limit, count;
    int bad_type = 0, first_starts_line;

    if (argc != 3 || !PyBytes_Check(argv[0])) {
        PyErr_SetString(PyExc_TypeError, "scan_headers(data: bytes, state: int, limit: int)");
        return NULL;
    }
    state = PyLong_AsLongLong(argv[1]);
    limit = PyLong_AsLongLong(argv[2]);
    if ((state == -1 || limit == -1) && PyErr_Occurred())
        return NULL;
    data = PyBytes_AS_STRING(argv[0]);
    len = PyBytes_GET_SIZE(argv[0]);
    end = data + len;
    if (len == 0)
        return Py_BuildValue("(nin)", (Py_ssize_t)-1, 0, (Py_ssize_t)state);

    if (state >= 0) {   /* a count going on from the previous chunk */
        count = count_digits(data, end, state / 8, limit, &stop);
        if (count > limit)
            return Py_BuildValue("(nin)", (Py_ssize_t)0, (int)AGGREGATES[state % 8],
                                 (Py_ssize_t)-1);
        if (stop == end)
            return Py_BuildValue("(nin)", (Py_ssize_t)-1, 0,
                                 (Py_ssize_t)(count * 8 + state % 8));
    }
    first_starts_line = state == -2;
    next_state = data[len - 1] == '\n' ? -2 : -1;
    for (int t = 0; AGGREGATES[t] != 0; t++) {
        for (p = memchr(data, AGGREGATES[t], (size_t)len); p != NULL && (bad < 0 || p - data < bad);
             p = memchr(p + 1, AGGREGATES[t], (size_t)(end - p - 1))) {
            if (p == data ? !first_starts_line : p[-1] != '\n')
                continue;   /* not at a line start: inside a body or a line */
            count = count_digits(p + 1, end, 0, limit, &stop);
            if (count > limit) {
                bad = p - data;
                bad_type = AGGREGATES[t];
                break;
            }
            if (stop == end)   /* the count may go on in the next chunk */
                next_state = count * 8 + t;
        }
    }
    return Py_BuildValue("(nin)", bad, bad_type, (Py_ssize_t)(bad >= 0 ? -1 : next_state));
}
