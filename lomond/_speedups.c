/*
 * Optional C versions of lomond.protocol.mask.mask and mask_into. They XOR
 * a payload with a 4-byte masking key repeated (RFC 6455 section 5.3).
 *
 * lomond.protocol.mask uses these when this module imports, and its pure
 * Python functions otherwise. Both versions take the same positional
 * arguments and raise the same exception types for invalid ones.
 *
 * Importing this module raises ImportError when the environment variable
 * LOMOND_NO_SPEEDUPS is set to a non-empty value. The check lives here
 * because lomond.protocol reads no environment variables
 * (tests/protocol/test_purity.py enforces that).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SIZE 4

/*
 * XOR size bytes of source with key into destination. The key phase
 * follows the index in source, so source[i] is XORed with key[i % 4].
 * source and destination may be the same pointer, but must not otherwise
 * overlap.
 */
static void
xor_with_key(unsigned char *destination, const unsigned char *source,
             Py_ssize_t size, const unsigned char key[KEY_SIZE])
{
    unsigned char key_bytes[8];
    uint64_t key_word;
    Py_ssize_t index = 0;

    /* The key is copied first, because it may be a view into destination.
     * Each 8-byte word starts at a multiple of 4, so the key repeated
     * twice lines up with every word. memcpy keeps the loads and stores
     * safe at any alignment, and compilers turn it into plain moves. */
    memcpy(key_bytes, key, KEY_SIZE);
    memcpy(key_bytes + KEY_SIZE, key, KEY_SIZE);
    memcpy(&key_word, key_bytes, sizeof(key_word));

    for (; index + 8 <= size; index += 8) {
        uint64_t word;
        memcpy(&word, source + index, sizeof(word));
        word ^= key_word;
        memcpy(destination + index, &word, sizeof(word));
    }
    for (; index < size; index++) {
        destination[index] = source[index] ^ key_bytes[index % KEY_SIZE];
    }
}

/* Fill key_view with the masking key, or raise ValueError unless it has
 * exactly 4 bytes. Like every buffer taken here, it must be C-contiguous.
 * PyObject_GetBuffer raises BufferError for a strided memoryview and
 * TypeError for an object that is not bytes-like. */
static int
get_key(PyObject *key, Py_buffer *key_view)
{
    if (PyObject_GetBuffer(key, key_view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (key_view->len != KEY_SIZE) {
        PyErr_Format(PyExc_ValueError,
                     "invalid masking key: expected 4 bytes, got %zd",
                     key_view->len);
        PyBuffer_Release(key_view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(mask_doc,
"mask(key, data, /)\n"
"--\n"
"\n"
"Return data XORed with the 4-byte key repeated (masking and unmasking).\n"
"\n"
"key and data may be any contiguous bytes-like objects. Raises ValueError\n"
"unless key has 4 bytes.");

static PyObject *
speedups_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer key_view;
    Py_buffer data_view;
    PyObject *result;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "mask() takes exactly 2 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (get_key(args[0], &key_view) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data_view, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&key_view);
        return NULL;
    }

    result = PyBytes_FromStringAndSize(NULL, data_view.len);
    if (result != NULL) {
        xor_with_key((unsigned char *)PyBytes_AS_STRING(result),
                     (const unsigned char *)data_view.buf, data_view.len,
                     (const unsigned char *)key_view.buf);
    }
    PyBuffer_Release(&data_view);
    PyBuffer_Release(&key_view);
    return result;
}

PyDoc_STRVAR(mask_into_doc,
"mask_into(out, offset, key, data, /)\n"
"--\n"
"\n"
"Write data XORed with the 4-byte key into out from offset on.\n"
"\n"
"out is a writable contiguous buffer such as a bytearray. Raises TypeError\n"
"for a read-only out, and ValueError unless key has 4 bytes or when\n"
"data does not fit in out from offset on.");

static PyObject *
speedups_mask_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer out_view;
    Py_buffer key_view;
    Py_buffer data_view;
    Py_ssize_t offset;
    unsigned char *destination;
    const unsigned char *source;

    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "mask_into() takes exactly 4 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    /* Without an exception type, an offset beyond Py_ssize_t is clamped to
     * its range, and the bounds check below rejects it with ValueError. */
    offset = PyNumber_AsSsize_t(args[1], NULL);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &out_view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (out_view.readonly) {
        PyErr_Format(PyExc_TypeError,
                     "mask_into() needs a writable out buffer such as a "
                     "bytearray, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        PyBuffer_Release(&out_view);
        return NULL;
    }
    if (get_key(args[2], &key_view) < 0) {
        PyBuffer_Release(&out_view);
        return NULL;
    }
    if (PyObject_GetBuffer(args[3], &data_view, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&key_view);
        PyBuffer_Release(&out_view);
        return NULL;
    }
    /* Written as a subtraction so that no sum can overflow. */
    if (offset < 0 || offset > out_view.len
            || data_view.len > out_view.len - offset) {
        PyErr_Format(PyExc_ValueError,
                     "invalid offset %zd: %zd bytes of data do not fit in an "
                     "out buffer of %zd bytes",
                     offset, data_view.len, out_view.len);
        PyBuffer_Release(&data_view);
        PyBuffer_Release(&key_view);
        PyBuffer_Release(&out_view);
        return NULL;
    }

    destination = (unsigned char *)out_view.buf + offset;
    source = (const unsigned char *)data_view.buf;
    if (destination != source
            && destination < source + data_view.len
            && source < destination + data_view.len) {
        /* data is a shifted view of the same memory. Moving it into place
         * first and then masking in place reads every byte before it is
         * overwritten. */
        memmove(destination, source, (size_t)data_view.len);
        source = destination;
    }
    xor_with_key(destination, source, data_view.len,
                 (const unsigned char *)key_view.buf);

    PyBuffer_Release(&data_view);
    PyBuffer_Release(&key_view);
    PyBuffer_Release(&out_view);
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL,
     mask_doc},
    {"mask_into", (PyCFunction)(void (*)(void))speedups_mask_into,
     METH_FASTCALL, mask_into_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    const char *disabled = getenv("LOMOND_NO_SPEEDUPS");

    if (disabled != NULL && disabled[0] != '\0') {
        PyErr_SetString(PyExc_ImportError,
                        "lomond._speedups is disabled because the "
                        "LOMOND_NO_SPEEDUPS environment variable is set");
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"C versions of lomond.protocol.mask.mask and mask_into.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lomond._speedups",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
