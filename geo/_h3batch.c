/*
 * Batch H3 indexing: one C loop over H3's own latLngToCell.
 *
 * h3-py calls H3's C function once per point through two Python calls; for the
 * ingest path (millions of points) that wrapper is most of the cost. This module
 * calls the *same* C functions (latLngToCell, degsToRads) from the library that
 * h3-py ships, so its cells are bit-identical to h3-py's, over whole arrays and
 * with the GIL released (web requests run while a batch is indexed).
 *
 * No H3 code is compiled in: bind() receives the path of h3-py's extension that
 * exports H3's public C API and looks the two functions up with dlsym. When that
 * fails (another h3-py build), geo.hexes keeps the pure-Python path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>

typedef struct {
    double lat;  /* radians */
    double lng;  /* radians */
} LatLng;

typedef uint32_t (*lat_lng_to_cell_fn)(const LatLng *, int, uint64_t *);
typedef double (*degs_to_rads_fn)(double);

static lat_lng_to_cell_fn lat_lng_to_cell = NULL;
static degs_to_rads_fn degs_to_rads = NULL;

static PyObject *bind(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        PyErr_Format(PyExc_OSError, "cannot open %s: %s", path, dlerror());
        return NULL;
    }
    lat_lng_to_cell = (lat_lng_to_cell_fn)dlsym(handle, "latLngToCell");
    degs_to_rads = (degs_to_rads_fn)dlsym(handle, "degsToRads");
    if (lat_lng_to_cell == NULL || degs_to_rads == NULL) {
        lat_lng_to_cell = NULL;
        degs_to_rads = NULL;
        PyErr_Format(PyExc_OSError, "%s does not export latLngToCell and degsToRads", path);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* index(lat, lon, res, out) -> -1, or the position of the first point H3 refused. */
static PyObject *index_points(PyObject *self, PyObject *args) {
    Py_buffer lat, lon, out;
    int res;
    if (lat_lng_to_cell == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() has not found H3's latLngToCell");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*iw*", &lat, &lon, &res, &out)) return NULL;
    Py_ssize_t n = lat.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t failed = -1;
    if (lon.len != lat.len || out.len != n * (Py_ssize_t)sizeof(uint64_t)
            || lat.len % (Py_ssize_t)sizeof(double) != 0) {
        PyBuffer_Release(&lat);
        PyBuffer_Release(&lon);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "lat, lon (float64) and out (uint64) must have one length");
        return NULL;
    }
    const double *lat_deg = (const double *)lat.buf;
    const double *lon_deg = (const double *)lon.buf;
    uint64_t *cells = (uint64_t *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        LatLng point = {degs_to_rads(lat_deg[i]), degs_to_rads(lon_deg[i])};
        if (lat_lng_to_cell(&point, res, &cells[i]) != 0) {
            failed = i;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&lat);
    PyBuffer_Release(&lon);
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(failed);
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind(path): find H3's C functions in h3-py's library."},
    {"index", index_points, METH_VARARGS,
     "index(lat, lon, res, out): H3 cells of float64 degrees into a uint64 buffer; "
     "returns -1, or the position of the first point H3 refused."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_h3batch",
                                    "Batch H3 indexing through h3-py's own C library.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__h3batch(void) { return PyModule_Create(&module); }
