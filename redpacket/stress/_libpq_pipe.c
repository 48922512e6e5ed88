/*
 * One libpq connection in pipeline mode, as the loop engine's workers drive it.
 *
 * Why C: at 8 clients the harness's own CPU per transaction decided its throughput
 * (the server shares the client's two cores), and most of it was the Python calls
 * around each result: consume_input, is_busy and get_result per result, a result
 * object made and freed for each, then status, ntuples, get_value and error_field on
 * it. Here one call sends a batch (its parameters looked up in the worker's context)
 * and one call per wake-up hands over every whole result as a small tuple, which is
 * all the worker reads of a result: (status, first row, SQLSTATE, detail), where
 * detail is 1 for an error the server called FATAL or PANIC and the transaction
 * status after a Sync; a last (-1, None, None, 0) says the connection is gone.
 * What a result *means* stays in Python (redpacket/stress/worker.py), for this wire
 * and for the psycopg one alike (redpacket/stress/pipes.py), which returns the same
 * tuples and is used wherever this module was not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <libpq-fe.h>

#ifndef LIBPQ_HAS_PIPELINING
#error "libpq 14 or later is needed: pipeline mode"
#endif

#define MAX_PARAMS 64
#define STATUS_CACHE 16
#define LOST (-1)

static PyObject *PipeError;              /* statements.PipeError: the connection failed or is gone */
static PyObject *plain[STATUS_CACHE];    /* (status, None, None, 0), made once */
static PyObject *synced[PQTRANS_UNKNOWN + 1]; /* (PIPELINE_SYNC, None, None, transaction status) */
static PyObject *lost;                   /* (LOST, None, None, 0) */

typedef struct {
    PyObject_HEAD
    PGconn *conn;
} Pipe;

static PyObject *
decoded(const char *text)
{
    if (text == NULL)
        text = "";
    return PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
}

static PyObject *
pipe_error(Pipe *self)
{
    PyObject *message = decoded(self->conn ? PQerrorMessage(self->conn) : "connection closed");
    if (message != NULL) {
        PyErr_SetObject(PipeError, message);
        Py_DECREF(message);
    }
    return NULL;
}

/* Notices and warnings are the server's to log, not the harness's to print (as psycopg) */
static void
ignore_notice(void *Py_UNUSED(arg), const char *Py_UNUSED(message))
{
}

static int
pipe_init(Pipe *self, PyObject *args, PyObject *kwargs)
{
    const char *conninfo;
    static char *keywords[] = {"conninfo", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y", keywords, &conninfo))
        return -1;
    if (self->conn != NULL) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    PGconn *conn;
    Py_BEGIN_ALLOW_THREADS
    conn = PQconnectdb(conninfo);
    Py_END_ALLOW_THREADS
    if (conn == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        PyObject *message = decoded(PQerrorMessage(conn));
        PQfinish(conn);
        if (message != NULL) {
            PyErr_SetObject(PipeError, message);
            Py_DECREF(message);
        }
        return -1;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    self->conn = conn;
    return 0;
}

static void
pipe_dealloc(Pipe *self)
{
    if (self->conn != NULL)
        PQfinish(self->conn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define NEED_CONN(self)                                                  \
    if ((self)->conn == NULL) {                                          \
        PyErr_SetString(PipeError, "the connection is closed");          \
        return NULL;                                                     \
    }

static PyObject *
pipe_close(Pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->conn != NULL) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_socket(Pipe *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->conn ? PQsocket(self->conn) : -1);
}

/* prepare(name, sql) -> (ok, sqlstate, primary message, whole message); blocking */
static PyObject *
pipe_prepare(Pipe *self, PyObject *args)
{
    const char *name, *sql;
    if (!PyArg_ParseTuple(args, "yy", &name, &sql))
        return NULL;
    NEED_CONN(self);
    PGresult *result = PQprepare(self->conn, name, sql, 0, NULL);
    if (result == NULL)
        return pipe_error(self);
    int ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    const char *sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    const char *message = PQresultErrorMessage(result);
    PyObject *answer = Py_BuildValue(
        "(NNNN)", PyBool_FromLong(ok), decoded(sqlstate), decoded(primary), decoded(message));
    PQclear(result);
    return answer;
}

/* set_config(name, value) -> None, or the server's message; blocking, values as parameters */
static PyObject *
pipe_set_config(Pipe *self, PyObject *args)
{
    const char *values[2];
    if (!PyArg_ParseTuple(args, "yy", &values[0], &values[1]))
        return NULL;
    NEED_CONN(self);
    PGresult *result = PQexecParams(
        self->conn, "SELECT set_config($1, $2, false)", 2, NULL, values, NULL, NULL, 0);
    if (result == NULL)
        return pipe_error(self);
    PyObject *answer;
    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
        Py_INCREF(Py_None);
        answer = Py_None;
    } else {
        answer = decoded(PQresultErrorMessage(result));
    }
    PQclear(result);
    return answer;
}

static PyObject *
pipe_start_pipeline(Pipe *self, PyObject *Py_UNUSED(ignored))
{
    NEED_CONN(self);
    if (PQsetnonblocking(self->conn, 1) != 0 || PQenterPipelineMode(self->conn) != 1)
        return pipe_error(self);
    Py_RETURN_NONE;
}

/*
 * send(items, context) -> 1 if the socket's buffer is full (flush when writable), else 0.
 * items: (kind, step index, prepared name, parameter names) each, as statements.Items;
 * every parameter's value is context[name], bytes. A Sync follows the last.
 */
static PyObject *
pipe_send(Pipe *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send(items: tuple, context: dict)");
        return NULL;
    }
    NEED_CONN(self);
    PyObject *items = args[0], *context = args[1];
    const char *values[MAX_PARAMS];
    char numbers[MAX_PARAMS][24]; /* an int parameter's text: no bytes object made per request */
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "an item is (kind, index, name, params)");
            return NULL;
        }
        const char *name = PyBytes_AsString(PyTuple_GET_ITEM(item, 2));
        PyObject *params = PyTuple_GET_ITEM(item, 3);
        if (name == NULL)
            return NULL;
        if (!PyTuple_Check(params) || PyTuple_GET_SIZE(params) > MAX_PARAMS) {
            PyErr_SetString(PyExc_TypeError, "parameters: a tuple of at most 64 names");
            return NULL;
        }
        int nparams = (int)PyTuple_GET_SIZE(params);
        for (int p = 0; p < nparams; p++) {
            PyObject *key = PyTuple_GET_ITEM(params, p);
            PyObject *value = PyDict_GetItemWithError(context, key);
            if (value == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, key);
                return NULL;
            }
            if (PyLong_CheckExact(value)) {
                long long number = PyLong_AsLongLong(value);
                if (number == -1 && PyErr_Occurred())
                    return NULL;
                snprintf(numbers[p], sizeof numbers[p], "%lld", number);
                values[p] = numbers[p];
                continue;
            }
            values[p] = PyBytes_AsString(value);
            if (values[p] == NULL)
                return NULL;
        }
        if (!PQsendQueryPrepared(self->conn, name, nparams, nparams ? values : NULL, NULL, NULL, 0))
            return pipe_error(self);
    }
    if (!PQpipelineSync(self->conn))
        return pipe_error(self);
    int flushed = PQflush(self->conn);
    if (flushed < 0)
        return pipe_error(self);
    return PyLong_FromLong(flushed);
}

static PyObject *
pipe_flush(Pipe *self, PyObject *Py_UNUSED(ignored))
{
    NEED_CONN(self);
    int flushed = PQflush(self->conn);
    if (flushed < 0)
        return pipe_error(self);
    return PyLong_FromLong(flushed);
}

static PyObject *
first_row(const PGresult *result)
{
    int nfields = PQnfields(result);
    PyObject *row = PyTuple_New(nfields);
    if (row == NULL)
        return NULL;
    for (int c = 0; c < nfields; c++) {
        PyObject *value;
        if (PQgetisnull(result, 0, c)) {
            Py_INCREF(Py_None);
            value = Py_None;
        } else {
            value = PyBytes_FromStringAndSize(PQgetvalue(result, 0, c), PQgetlength(result, 0, c));
            if (value == NULL) {
                Py_DECREF(row);
                return NULL;
            }
        }
        PyTuple_SET_ITEM(row, c, value);
    }
    return row;
}

/* What the worker reads of a result: (status, first row or None, SQLSTATE or None, detail) */
static PyObject *
summary(const PGresult *result, const PGconn *conn)
{
    ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) {
        PyObject *row = first_row(result);
        if (row == NULL)
            return NULL;
        return Py_BuildValue("(iNOi)", (int)status, row, Py_None, 0);
    }
    if (status == PGRES_PIPELINE_SYNC) {
        /* libpq read the Sync's ReadyForQuery before giving this result: the status it
           carries is this batch's end (nothing else is sent before the worker reads it) */
        PGTransactionStatusType transaction = PQtransactionStatus(conn);
        Py_INCREF(synced[transaction]);
        return synced[transaction];
    }
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR
        || status == PGRES_BAD_RESPONSE) {
        const char *sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        const char *severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
        int fatal = severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
        PyObject *code;
        if (sqlstate != NULL) {
            code = PyUnicode_DecodeASCII(sqlstate, (Py_ssize_t)strlen(sqlstate), "replace");
            if (code == NULL)
                return NULL;
        } else {
            Py_INCREF(Py_None);
            code = Py_None;
        }
        return Py_BuildValue("(iONi)", (int)status, Py_None, code, fatal);
    }
    if ((int)status >= 0 && (int)status < STATUS_CACHE) {
        Py_INCREF(plain[status]);
        return plain[status];
    }
    return Py_BuildValue("(iOOi)", (int)status, Py_None, Py_None, 0);
}

/*
 * read() -> [result summary, ...]: every whole result that has arrived, in order, then
 * LOST's summary if the connection is gone. In pipeline mode libpq gives one NULL
 * after each statement's results and waits at two in a row; a result not yet whole
 * stays in libpq for the next call.
 */
static PyObject *
pipe_read(Pipe *self, PyObject *Py_UNUSED(ignored))
{
    NEED_CONN(self);
    PGconn *conn = self->conn;
    if (!PQconsumeInput(conn))
        return pipe_error(self);
    PyObject *results = PyList_New(0);
    if (results == NULL)
        return NULL;
    int empty = 0;
    while (!PQisBusy(conn)) {
        PGresult *result = PQgetResult(conn);
        if (result == NULL) {
            if (++empty > 1)
                break;
            continue;
        }
        empty = 0;
        PyObject *item = summary(result, conn);
        PQclear(result);
        if (item == NULL || PyList_Append(results, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(results);
            return NULL;
        }
        Py_DECREF(item);
    }
    if (PQstatus(conn) == CONNECTION_BAD && PyList_Append(results, lost) < 0) {
        Py_DECREF(results);
        return NULL;
    }
    return results;
}

static PyMethodDef pipe_methods[] = {
    {"prepare", (PyCFunction)pipe_prepare, METH_VARARGS, NULL},
    {"set_config", (PyCFunction)pipe_set_config, METH_VARARGS, NULL},
    {"start_pipeline", (PyCFunction)pipe_start_pipeline, METH_NOARGS, NULL},
    {"send", (PyCFunction)(void (*)(void))pipe_send, METH_FASTCALL, NULL},
    {"flush", (PyCFunction)pipe_flush, METH_NOARGS, NULL},
    {"read", (PyCFunction)pipe_read, METH_NOARGS, NULL},
    {"close", (PyCFunction)pipe_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pipe_getset[] = {
    {"socket", (getter)pipe_socket, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PipeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "redpacket.stress._libpq_pipe.Pipe",
    .tp_basicsize = sizeof(Pipe),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pipe_init,
    .tp_dealloc = (destructor)pipe_dealloc,
    .tp_methods = pipe_methods,
    .tp_getset = pipe_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_libpq_pipe", NULL, -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__libpq_pipe(void)
{
    if (PyType_Ready(&PipeType) < 0)
        return NULL;
    for (int status = 0; status < STATUS_CACHE; status++) {
        plain[status] = Py_BuildValue("(iOOi)", status, Py_None, Py_None, 0);
        if (plain[status] == NULL)
            return NULL;
    }
    for (int transaction = 0; transaction <= PQTRANS_UNKNOWN; transaction++) {
        synced[transaction] = Py_BuildValue("(iOOi)", PGRES_PIPELINE_SYNC, Py_None, Py_None, transaction);
        if (synced[transaction] == NULL)
            return NULL;
    }
    lost = Py_BuildValue("(iOOi)", LOST, Py_None, Py_None, 0);
    if (lost == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* One exception for both wires: the psycopg one raises it too */
    PyObject *statements = PyImport_ImportModule("redpacket.stress.statements");
    if (statements == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    PipeError = PyObject_GetAttrString(statements, "PipeError");
    Py_DECREF(statements);
    if (PipeError == NULL || PyModule_AddObjectRef(m, "Pipe", (PyObject *)&PipeType) < 0
        || PyModule_AddIntConstant(m, "LIBPQ_VERSION", PQlibVersion()) < 0
        || PyModule_AddIntConstant(m, "LOST", LOST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
