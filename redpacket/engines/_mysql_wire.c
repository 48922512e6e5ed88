/*
 * MySQL's client/server protocol for one statement at a time, over a socket that a
 * driver (PyMySQL) has already connected and authenticated.
 *
 * Why C: a newcomer's machine has no MariaDB client headers, so mysqlclient cannot
 * build, and PyMySQL spends tens of microseconds of Python on every answer; the stress
 * loop and the spec runner send one query, wait for the socket, and read one answer,
 * thousands of times a second on cores the server shares. This module needs only
 * Python's headers and a C compiler: it frames a COM_QUERY, and reads back an OK, an
 * ERR or a text result set as one small tuple:
 *
 *   (0, affected rows, last insert id, status flags, warnings)
 *   (1, column names, rows, status flags, warnings)
 *   (2, error number, SQLSTATE, message, 0)
 *
 * Values are bytes (None for NULL); with typed=True, the integer columns' values are
 * ints and the others str, as the stress loop's strategies read them. A connection
 * that is gone (closed, reset, a reply that is not MySQL's) raises Lost, a
 * ConnectionError. The same is written in Python in mysql_wire.py, used wherever this
 * module was not built; tests/test_mysql_wire.py holds the two to each other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define COM_QUERY 0x03
#define MAX_PAYLOAD 0xFFFFFF
#define OK_ROW 0
#define ROWS 1
#define ERR 2

static PyObject *Lost;

typedef struct {
    PyObject_HEAD
    int fd;
    int deprecate_eof;
    char *buf;
    Py_ssize_t cap, start, end;   /* unread bytes are buf[start:end] */
    char *out;
    Py_ssize_t out_cap;
    unsigned char *types;          /* column types of the result being read */
    Py_ssize_t types_cap;
} Wire;

static PyObject *
lost(const char *why)
{
    PyErr_SetString(Lost, why);
    return NULL;
}

/* Wait until the socket is readable (a socket left non-blocking by its owner). */
static int
wait_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    int got;
    Py_BEGIN_ALLOW_THREADS
    got = poll(&p, 1, -1);
    Py_END_ALLOW_THREADS
    return got;
}

/* At least `want` unread bytes in the buffer, reading from the socket as needed. */
static int
have(Wire *self, Py_ssize_t want)
{
    while (self->end - self->start < want) {
        if (self->start > 0) {
            memmove(self->buf, self->buf + self->start, self->end - self->start);
            self->end -= self->start;
            self->start = 0;
        }
        if (self->cap - self->end < want || self->cap - self->end < 4096) {
            Py_ssize_t cap = self->cap * 2 > want + 4096 ? self->cap * 2 : want + 4096;
            char *grown = PyMem_Realloc(self->buf, cap);
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            self->buf = grown;
            self->cap = cap;
        }
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = recv(self->fd, self->buf + self->end, self->cap - self->end, 0);
        Py_END_ALLOW_THREADS
        if (n > 0) {
            self->end += n;
        } else if (n == 0) {
            lost("the server closed the connection");
            return -1;
        } else if (errno == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_readable(self->fd) < 0 && errno != EINTR) {
                lost(strerror(errno));
                return -1;
            }
        } else {
            lost(strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The next packet's payload, consumed from the buffer (valid until the next read). */
static int
packet(Wire *self, const unsigned char **payload, Py_ssize_t *length)
{
    if (have(self, 4) < 0)
        return -1;
    const unsigned char *head = (const unsigned char *)self->buf + self->start;
    Py_ssize_t size = head[0] | (head[1] << 8) | (head[2] << 16);
    if (size == MAX_PAYLOAD) {
        lost("a reply of 16 MiB or more: not a statement the lab sends");
        return -1;
    }
    if (have(self, 4 + size) < 0)
        return -1;
    *payload = (const unsigned char *)self->buf + self->start + 4;
    *length = size;
    self->start += 4 + size;
    return 0;
}

/* A length-encoded integer at *at (advanced); -1: NULL (0xFB) or past the end. */
static int64_t
lenenc(const unsigned char **at, const unsigned char *stop)
{
    const unsigned char *p = *at;
    if (p >= stop)
        return -1;
    unsigned char first = *p++;
    int64_t value;
    int bytes = first < 0xFB ? 0 : first == 0xFC ? 2 : first == 0xFD ? 3 : first == 0xFE ? 8 : -1;
    if (bytes < 0) {
        *at = p;
        return -1;
    }
    if (bytes == 0) {
        value = first;
    } else {
        if (p + bytes > stop)
            return -1;
        value = 0;
        for (int i = bytes - 1; i >= 0; i--)
            value = (value << 8) | p[i];
        p += bytes;
    }
    *at = p;
    return value;
}

static PyObject *
ok_tuple(const unsigned char *p, const unsigned char *stop)
{
    p++; /* 0x00 or 0xFE */
    int64_t affected = lenenc(&p, stop);
    int64_t insert_id = lenenc(&p, stop);
    if (affected < 0 || insert_id < 0 || p + 4 > stop)
        return lost("a malformed OK packet");
    int status = p[0] | (p[1] << 8);
    int warnings = p[2] | (p[3] << 8);
    return Py_BuildValue("(iLLii)", OK_ROW, (long long)affected, (long long)insert_id,
                         status, warnings);
}

static PyObject *
err_tuple(const unsigned char *p, const unsigned char *stop)
{
    if (stop - p < 3)
        return lost("a malformed ERR packet");
    int number = p[1] | (p[2] << 8);
    p += 3;
    const char *sqlstate = "HY000";
    char state[6] = {0};
    if (p < stop && *p == '#' && stop - p >= 6) {
        memcpy(state, p + 1, 5);
        sqlstate = state;
        p += 6;
    }
    PyObject *message = PyUnicode_DecodeUTF8((const char *)p, stop - p, "replace");
    if (message == NULL)
        return NULL;
    return Py_BuildValue("(iisNi)", ERR, number, sqlstate, message, 0);
}

static int
is_integer(unsigned char type)
{
    /* TINY, SHORT, LONG, LONGLONG, INT24, YEAR */
    return type == 1 || type == 2 || type == 3 || type == 8 || type == 9 || type == 13;
}

static PyObject *
value(const unsigned char *p, Py_ssize_t size, unsigned char type, int typed)
{
    if (!typed)
        return PyBytes_FromStringAndSize((const char *)p, size);
    if (is_integer(type) && size > 0 && size < 32) {
        char digits[32];
        memcpy(digits, p, size);
        digits[size] = '\0';
        return PyLong_FromString(digits, NULL, 10);
    }
    return PyUnicode_DecodeUTF8((const char *)p, size, "surrogateescape");
}

static int
is_eof(const unsigned char *p, Py_ssize_t length, int deprecate_eof)
{
    if (p[0] != 0xFE)
        return 0;
    return deprecate_eof ? length < MAX_PAYLOAD : length < 9;
}

static PyObject *
rows_of(Wire *self, int64_t columns, int typed)
{
    const unsigned char *p, *stop;
    Py_ssize_t length;
    PyObject *names = NULL, *rows = NULL, *result = NULL;

    if (columns > self->types_cap) {
        unsigned char *grown = PyMem_Realloc(self->types, columns);
        if (grown == NULL)
            return PyErr_NoMemory();
        self->types = grown;
        self->types_cap = columns;
    }
    names = PyTuple_New(columns);
    if (names == NULL)
        return NULL;
    for (int64_t i = 0; i < columns; i++) {
        if (packet(self, &p, &length) < 0)
            goto done;
        stop = p + length;
        int64_t size = 0;
        for (int field = 0; field < 5; field++) { /* catalog, schema, table, org_table, name */
            size = lenenc(&p, stop);
            if (size < 0 || p + size > stop) {
                lost("a malformed column definition");
                goto done;
            }
            if (field == 4) {
                PyObject *name = PyBytes_FromStringAndSize((const char *)p, size);
                if (name == NULL)
                    goto done;
                PyTuple_SET_ITEM(names, i, name);
            }
            p += size;
        }
        size = lenenc(&p, stop); /* org_name */
        if (size < 0 || p + size > stop) {
            lost("a malformed column definition");
            goto done;
        }
        p += size;
        lenenc(&p, stop); /* length of the fixed fields, 0x0c */
        if (p + 7 > stop) {
            lost("a malformed column definition");
            goto done;
        }
        self->types[i] = p[6]; /* after charset (2) and column length (4) */
    }
    if (!self->deprecate_eof) {
        if (packet(self, &p, &length) < 0)
            goto done;
        if (!is_eof(p, length, 0)) {
            lost("no EOF after the column definitions");
            goto done;
        }
    }
    rows = PyList_New(0);
    if (rows == NULL)
        goto done;
    for (;;) {
        if (packet(self, &p, &length) < 0)
            goto done;
        stop = p + length;
        if (length > 0 && p[0] == 0xFF) { /* an error in mid-result: a deadlock, a kill */
            result = err_tuple(p, stop);
            goto done;
        }
        if (length > 0 && is_eof(p, length, self->deprecate_eof)) {
            int status, warnings;
            if (self->deprecate_eof) {
                PyObject *ok = ok_tuple(p, stop);
                if (ok == NULL)
                    goto done;
                status = (int)PyLong_AsLong(PyTuple_GET_ITEM(ok, 3));
                warnings = (int)PyLong_AsLong(PyTuple_GET_ITEM(ok, 4));
                Py_DECREF(ok);
            } else {
                warnings = length >= 3 ? p[1] | (p[2] << 8) : 0;
                status = length >= 5 ? p[3] | (p[4] << 8) : 0;
            }
            result = Py_BuildValue("(iOOii)", ROWS, names, rows, status, warnings);
            goto done;
        }
        PyObject *row = PyTuple_New(columns);
        if (row == NULL)
            goto done;
        for (int64_t i = 0; i < columns; i++) {
            PyObject *item;
            if (p < stop && *p == 0xFB) {
                p++;
                item = Py_NewRef(Py_None);
            } else {
                int64_t size = lenenc(&p, stop);
                if (size < 0 || p + size > stop) {
                    Py_DECREF(row);
                    lost("a malformed row");
                    goto done;
                }
                item = value(p, size, self->types[i], typed);
                p += size;
                if (item == NULL) {
                    Py_DECREF(row);
                    goto done;
                }
            }
            PyTuple_SET_ITEM(row, i, item);
        }
        int appended = PyList_Append(rows, row);
        Py_DECREF(row);
        if (appended < 0)
            goto done;
    }
done:
    Py_XDECREF(names);
    Py_XDECREF(rows);
    return result;
}

static PyObject *
Wire_read(Wire *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"typed", NULL};
    int typed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p", keywords, &typed))
        return NULL;
    const unsigned char *p;
    Py_ssize_t length;
    if (packet(self, &p, &length) < 0)
        return NULL;
    if (length == 0)
        return lost("an empty reply");
    const unsigned char *stop = p + length;
    if (p[0] == 0x00)
        return ok_tuple(p, stop);
    if (p[0] == 0xFF)
        return err_tuple(p, stop);
    if (p[0] == 0xFB)
        return lost("the server asked for a local file: not a statement the lab sends");
    int64_t columns = lenenc(&p, stop);
    if (columns <= 0)
        return lost("a malformed result set header");
    return rows_of(self, columns, typed);
}

static PyObject *
Wire_send(Wire *self, PyObject *query)
{
    char *text;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(query, &text, &size) < 0)
        return NULL;
    if (size + 1 >= MAX_PAYLOAD) {
        PyErr_SetString(PyExc_ValueError, "a query of 16 MiB or more");
        return NULL;
    }
    Py_ssize_t total = 5 + size;
    if (total > self->out_cap) {
        char *grown = PyMem_Realloc(self->out, total);
        if (grown == NULL)
            return PyErr_NoMemory();
        self->out = grown;
        self->out_cap = total;
    }
    Py_ssize_t payload = size + 1;
    self->out[0] = (char)(payload & 0xFF);
    self->out[1] = (char)((payload >> 8) & 0xFF);
    self->out[2] = (char)((payload >> 16) & 0xFF);
    self->out[3] = 0; /* every command starts a new sequence */
    self->out[4] = COM_QUERY;
    memcpy(self->out + 5, text, size);
    Py_ssize_t sent = 0;
    while (sent < total) {
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = send(self->fd, self->out + sent, total - sent, MSG_NOSIGNAL);
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            sent += n;
        } else if (errno == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return NULL;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd w = {self->fd, POLLOUT, 0};
            Py_BEGIN_ALLOW_THREADS
            poll(&w, 1, -1);
            Py_END_ALLOW_THREADS
        } else {
            return lost(strerror(errno));
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
Wire_pending(Wire *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->end > self->start);
}

static int
Wire_init(Wire *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fd", "deprecate_eof", NULL};
    int fd, deprecate_eof = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i|p", keywords, &fd, &deprecate_eof))
        return -1;
    self->fd = fd;
    self->deprecate_eof = deprecate_eof;
    self->start = self->end = 0;
    return 0;
}

static void
Wire_dealloc(Wire *self)
{
    PyMem_Free(self->buf);
    PyMem_Free(self->out);
    PyMem_Free(self->types);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Wire_fd(Wire *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->fd);
}

static PyMethodDef Wire_methods[] = {
    {"send", (PyCFunction)Wire_send, METH_O, "Send one COM_QUERY (bytes)."},
    {"read", (PyCFunction)(void (*)(void))Wire_read, METH_VARARGS | METH_KEYWORDS,
     "Read one whole answer, waiting for what has not arrived."},
    {"pending", (PyCFunction)Wire_pending, METH_NOARGS,
     "Whether bytes of an answer are buffered already."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Wire_getset[] = {
    {"fd", (getter)Wire_fd, NULL, "the socket", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WireType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "redpacket.engines._mysql_wire.Wire",
    .tp_basicsize = sizeof(Wire),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One statement at a time over an authenticated MySQL connection's socket.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Wire_init,
    .tp_dealloc = (destructor)Wire_dealloc,
    .tp_methods = Wire_methods,
    .tp_getset = Wire_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mysql_wire", "MySQL's text protocol, one statement at a time.",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__mysql_wire(void)
{
    if (PyType_Ready(&WireType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Lost = PyErr_NewException("redpacket.engines._mysql_wire.Lost", PyExc_ConnectionError, NULL);
    if (Lost == NULL || PyModule_AddObjectRef(m, "Lost", Lost) < 0 ||
        PyModule_AddObjectRef(m, "Wire", (PyObject *)&WireType) < 0 ||
        PyModule_AddIntConstant(m, "OK", OK_ROW) < 0 || PyModule_AddIntConstant(m, "ROWS", ROWS) < 0 ||
        PyModule_AddIntConstant(m, "ERR", ERR) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
