/*
 * What the files of the respcache._fastpath module share: fastpath.c (the module, the request
 * loop, the counters), fastpath_strings.c (GET and SET), fastpath_scan.c (the header scan).
 */
#ifndef RESPCACHE_FASTPATH_H
#define RESPCACHE_FASTPATH_H

#include <Python.h>

extern PyObject *fastpath_str_table;   /* "table": a connection's ShmLRU */

/* fastpath_strings.c */
int fastpath_strings_init(void);
PyObject *fastpath_get_handler(PyObject *module, PyObject *const *argv, Py_ssize_t argc);
PyObject *fastpath_set_handler(PyObject *module, PyObject *const *argv, Py_ssize_t argc);
PyObject *fastpath_configure(PyObject *module, PyObject *const *argv, Py_ssize_t argc);
extern const char fastpath_get_handler_doc[], fastpath_set_handler_doc[],
                  fastpath_configure_doc[];

/* fastpath_scan.c */
PyObject *fastpath_scan_headers(PyObject *module, PyObject *const *argv, Py_ssize_t argc);
extern const char fastpath_scan_headers_doc[];

#endif
