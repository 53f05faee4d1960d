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
 *
 * refine() makes coarser resolutions exact without calling latLngToCell again for
 * most points: a point strictly inside its candidate cell (its base cell's parent),
 * or strictly inside one of the candidate's neighbours, gets that cell; a point too
 * close to an edge to tell asks latLngToCell. The cells' edge tests come from
 * geo.hexes (a table built from H3's own cell outlines), so no H3 code is compiled in.
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

/* Row of the edge table (geo.hexes.EdgeTable): six edges (a, b, c), lat0, lon0, reach, margin. */
#define ROW 22

/*
 * 1 when (lat, lon) in degrees lies strictly inside the table's cell: within reach of
 * its centre, and each edge's linearised n . p (a + b dlat + c dlon) above the margin
 * that bounds the linearisation's error over the reach.
 */
static inline int strictly_inside(const double *row, double lat, double lon) {
    double dlat = lat - row[18], dlon = lon - row[19];
    double reach = row[20], margin = row[21];
    if (!(dlat <= reach && dlat >= -reach && dlon <= reach && dlon >= -reach)) return 0;
    for (int e = 0; e < 6; e++) {
        const double *edge = row + 3 * e;
        if (!(edge[0] + edge[1] * dlat + edge[2] * dlon > margin)) return 0;
    }
    return 1;
}

/*
 * refine(lat, lon, res, cells, codes, ids, table, neighbours) -> number of points
 * that asked latLngToCell, or -(i + 2) when H3 refused point i.
 *
 * cells: uint64 (n) candidate cells in, exact cells out; codes: int64 (n) row of each
 * candidate in the table; ids: uint64 (m) the table's cells; table: float64 (m, 22);
 * neighbours: int64 (m, 6) rows of each cell's neighbours (-1: none).
 */
static PyObject *refine(PyObject *self, PyObject *args) {
    Py_buffer lat, lon, cells, codes, ids, table, neighbours;
    int res;
    if (lat_lng_to_cell == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() has not found H3's latLngToCell");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*iw*y*y*y*y*", &lat, &lon, &res, &cells, &codes, &ids,
                          &table, &neighbours)) return NULL;
    Py_ssize_t n = lat.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t m = table.len / (Py_ssize_t)(ROW * sizeof(double));
    const int64_t *code = (const int64_t *)codes.buf;
    const int64_t *next = (const int64_t *)neighbours.buf;
    int ok = lon.len == lat.len && cells.len == n * (Py_ssize_t)sizeof(uint64_t)
        && codes.len == n * (Py_ssize_t)sizeof(int64_t)
        && ids.len == m * (Py_ssize_t)sizeof(uint64_t)
        && table.len == m * (Py_ssize_t)(ROW * sizeof(double))
        && neighbours.len == m * (Py_ssize_t)(6 * sizeof(int64_t));
    for (Py_ssize_t i = 0; ok && i < n; i++) ok = code[i] >= 0 && code[i] < m;
    for (Py_ssize_t i = 0; ok && i < 6 * m; i++) ok = next[i] >= -1 && next[i] < m;
    if (!ok) {
        PyBuffer_Release(&lat); PyBuffer_Release(&lon); PyBuffer_Release(&cells);
        PyBuffer_Release(&codes); PyBuffer_Release(&ids); PyBuffer_Release(&table);
        PyBuffer_Release(&neighbours);
        PyErr_SetString(PyExc_ValueError, "refine: buffers of mismatched lengths or rows "
                                          "outside the table");
        return NULL;
    }
    const double *lat_deg = (const double *)lat.buf;
    const double *lon_deg = (const double *)lon.buf;
    const double *rows = (const double *)table.buf;
    const uint64_t *cell_of = (const uint64_t *)ids.buf;
    uint64_t *out = (uint64_t *)cells.buf;
    Py_ssize_t asked = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        double y = lat_deg[i], x = lon_deg[i];
        int64_t own = code[i];
        if (strictly_inside(rows + ROW * own, y, x)) continue;
        int found = 0;
        for (int k = 0; k < 6 && !found; k++) {
            int64_t other = next[6 * own + k];
            if (other >= 0 && strictly_inside(rows + ROW * other, y, x)) {
                found = 1;
                out[i] = cell_of[other];
            }
        }
        if (found) continue;
        asked++;
        LatLng point = {degs_to_rads(y), degs_to_rads(x)};
        if (lat_lng_to_cell(&point, res, &out[i]) != 0) {
            asked = -(i + 2);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&lat); PyBuffer_Release(&lon); PyBuffer_Release(&cells);
    PyBuffer_Release(&codes); PyBuffer_Release(&ids); PyBuffer_Release(&table);
    PyBuffer_Release(&neighbours);
    return PyLong_FromSsize_t(asked);
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind(path): find H3's C functions in h3-py's library."},
    {"index", index_points, METH_VARARGS,
     "index(lat, lon, res, out): H3 cells of float64 degrees into a uint64 buffer; "
     "returns -1, or the position of the first point H3 refused."},
    {"refine", refine, METH_VARARGS,
     "refine(lat, lon, res, cells, codes, ids, table, neighbours): candidate cells made exact "
     "(see geo.hexes.index_exact); returns how many points asked latLngToCell, or "
     "-(i + 2) when H3 refused point i."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_h3batch",
                                    "Batch H3 indexing through h3-py's own C library.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__h3batch(void) { return PyModule_Create(&module); }
