/* fabhub 3D viewer: WebGL 1, no dependencies. AGPL-3.0-or-later.
 *
 * Markup: <div data-mesh-viewer data-new="URL" data-old="URL"> holding a .mv-stage with a
 * <canvas>, an optional fallback <img class="mv-fallback"> and a <p class="mv-message">.
 * Each URL serves little-endian float32 triangles: 9 floats (3 corners × x, y, z in mm)
 * per triangle. Given both URLs the viewer compares: the old version in translucent
 * orange over the new one in blue-grey, one or the other alone, or side by side. In the
 * overlay, what of the old part lies inside the new one (a smaller old part, a pocket that
 * was filled) shows through the new surface in orange ("x-ray"): a stencil count of the
 * new surfaces in front of the old one's nearest surface, odd where it is inside. The
 * root's data-layout ("overlay" or "side") and data-canvases say what is drawn.
 * data-old-transform (JSON {rotation: 3 rows, shift: [x, y, z]}) is the rigid move that
 * the geometric diff found from the old part onto the new: the view can apply it.
 * data-extra (one version only) is a URL answering what to draw besides the triangles
 * (designs.meshes.mesh_viewer_extra): b"FHX1", uint32 colour groups G, runs R, open edges
 * E, open edges in all; G × RGBA bytes (a body's or object's colour; alpha 0: none of its
 * own); R × (uint32 triangles, uint32 group), consecutive runs of the triangles; E × 6
 * float32, the open edges' corners (holes), drawn in red over the part. Without it (older
 * analyses) the part is one colour.
 * <div data-mesh-viewer data-scene="URL"> shows an assembly instead: the URL answers JSON
 * {parts: [{url, matrix, module, path}]}, each part's triangles placed by its 4×4
 * column-major matrix (mm), each module in its own colour.
 */
(() => {
  "use strict";

  const COLOURS = { single: [0.6, 0.68, 0.78], new: [0.55, 0.63, 0.74], old: [0.95, 0.5, 0.22] };
  const PALETTE = [[0.55, 0.63, 0.74], [0.93, 0.6, 0.3], [0.45, 0.7, 0.5], [0.75, 0.5, 0.72], [0.85, 0.75, 0.35], [0.4, 0.65, 0.75]];
  const MAX_SCENE_PARTS = 400;
  const OLD_ALPHA = 0.42;
  const INSIDE_ALPHA = 0.7; // the old part seen through the new one
  const OPEN_EDGE_COLOUR = [0.86, 0.08, 0.12];
  const AUTO_START = 6; // browsers drop the oldest WebGL context past ~16: start the rest on a click
  const HOME = { az: -0.6, el: 0.5, zoom: 1 }; // zoom 1: the model fills the view from here

  const VERTEX_SHADER = `
    attribute vec3 aPos;
    attribute vec3 aNormal;
    uniform mat3 uRot;
    uniform vec3 uCentre;
    uniform vec3 uScale;
    varying vec3 vNormal;
    void main() {
      vNormal = uRot * aNormal;
      gl_Position = vec4(uRot * (aPos - uCentre) * uScale, 1.0);
    }`;

  // Lambert from a key and a fill light, plus ambient; premultiplied alpha.
  const FRAGMENT_SHADER = `
    precision mediump float;
    uniform vec3 uColour;
    uniform float uAlpha;
    uniform float uFlat;  // 1: unlit (lines), 0: lit (surfaces)
    varying vec3 vNormal;
    void main() {
      vec3 n = normalize(vNormal);
      if (n.z < 0.0) n = -n;  // light both sides: many meshes have flipped triangles
      float key = max(dot(n, normalize(vec3(-0.45, 0.6, 0.65))), 0.0);
      float fill = max(dot(n, normalize(vec3(0.7, -0.25, 0.4))), 0.0);
      vec3 lit = uColour * (0.3 + 0.62 * key + 0.2 * fill);
      gl_FragColor = vec4(mix(lit, uColour, uFlat) * uAlpha, uAlpha);
    }`;

  /* -- meshes ------------------------------------------------------------------------ */

  async function loadMesh(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 404) throw new Error("No 3D data for this file (yet).");
    if (!response.ok) throw new Error(`Could not load the 3D data (HTTP ${response.status}).`);
    const buffer = await response.arrayBuffer();
    const positions = new Float32Array(buffer, 0, Math.floor(buffer.byteLength / 36) * 9);
    if (!positions.length) throw new Error("This mesh has no triangles to show.");
    return { positions, normals: flatNormals(positions), frame: frameOf(positions) };
  }

  // The colour groups and open edges of one mesh of `triangles` triangles, or null when
  // the data is missing (older analyses), malformed or for other triangles.
  async function loadExtra(url, triangles) {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return null;
      const buffer = await response.arrayBuffer();
      const view = new DataView(buffer);
      if (buffer.byteLength < 20 || String.fromCharCode(...new Uint8Array(buffer, 0, 4)) !== "FHX1") return null;
      const [groupCount, runCount, edgeCount, edgeTotal] = [4, 8, 12, 16].map((at) => view.getUint32(at, true));
      const runsAt = 20 + 4 * groupCount, edgesAt = runsAt + 8 * runCount;
      if (buffer.byteLength !== edgesAt + 24 * edgeCount) return null;
      const colours = [];
      for (let i = 0; i < groupCount; i++) {
        const rgba = [0, 1, 2, 3].map((k) => view.getUint8(20 + 4 * i + k));
        colours.push({ colour: rgba.slice(0, 3).map((c) => c / 255), own: rgba[3] > 0 });
      }
      const runs = [];
      let first = 0;
      for (let i = 0; i < runCount; i++) {
        const count = view.getUint32(runsAt + 8 * i, true), group = colours[view.getUint32(runsAt + 8 * i + 4, true)];
        if (!group) return null;
        runs.push({ first, count, ...group });
        first += count;
      }
      if (first !== triangles) return null;
      return { runs, coloured: colours.length > 1 || colours.some((c) => c.own), edges: new Float32Array(buffer, edgesAt, edgeCount * 6), edgeTotal };
    } catch (error) {
      return null; // the part still shows, in one colour
    }
  }

  // One normal per triangle, repeated for its three corners (flat shading).
  function flatNormals(p) {
    const n = new Float32Array(p.length);
    for (let i = 0; i < p.length; i += 9) {
      const ux = p[i + 3] - p[i], uy = p[i + 4] - p[i + 1], uz = p[i + 5] - p[i + 2];
      const vx = p[i + 6] - p[i], vy = p[i + 7] - p[i + 1], vz = p[i + 8] - p[i + 2];
      const x = uy * vz - uz * vy, y = uz * vx - ux * vz, z = ux * vy - uy * vx;
      const length = Math.hypot(x, y, z) || 1;
      for (let k = 0; k < 9; k += 3) {
        n[i + k] = x / length;
        n[i + k + 1] = y / length;
        n[i + k + 2] = z / length;
      }
    }
    return n;
  }

  // The box around some points (or around other frames' boxes), its centre and radius.
  function frameOf(points) {
    const min = [Infinity, Infinity, Infinity], max = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < points.length; i += 3) {
      for (let a = 0; a < 3; a++) {
        min[a] = Math.min(min[a], points[i + a]);
        max[a] = Math.max(max[a], points[i + a]);
      }
    }
    const centre = min.map((low, a) => (low + max[a]) / 2);
    const radius = Math.hypot(max[0] - min[0], max[1] - min[1], max[2] - min[2]) / 2 || 1;
    return { min, max, centre, radius };
  }

  const union = (frames) => frameOf(frames.flatMap((f) => [...f.min, ...f.max]));

  // The mesh moved by p → R p + shift (normals only turned).
  function moved(mesh, { rotation: r, shift }) {
    const apply = (source, offset) => {
      const out = new Float32Array(source.length);
      for (let i = 0; i < source.length; i += 3) {
        const x = source[i], y = source[i + 1], z = source[i + 2];
        for (let a = 0; a < 3; a++) out[i + a] = r[a][0] * x + r[a][1] * y + r[a][2] * z + offset[a];
      }
      return out;
    };
    const positions = apply(mesh.positions, shift);
    return { positions, normals: apply(mesh.normals, [0, 0, 0]), frame: frameOf(positions) };
  }

  // Orbit about the model's Z axis (Z is up in printable models), then tilt; column-major.
  function rotation(az, el) {
    const ca = Math.cos(az), sa = Math.sin(az);
    const b = el - Math.PI / 2, cb = Math.cos(b), sb = Math.sin(b);
    return [ca, cb * sa, sb * sa, -sa, cb * ca, sb * ca, 0, -sb, cb];
  }

  // Clip units per mm that fit the frame's box, seen from HOME, into a w × h canvas.
  function fitScale(frame, { w, h }) {
    const r = rotation(HOME.az, HOME.el), kx = Math.min(1, h / w), ky = Math.min(1, w / h);
    let reach = 0;
    for (let corner = 0; corner < 8; corner++) {
      const c = [0, 1, 2].map((a) => ((corner >> a) & 1 ? frame.max[a] : frame.min[a]) - frame.centre[a]);
      const x = r[0] * c[0] + r[3] * c[1] + r[6] * c[2], y = r[1] * c[0] + r[4] * c[1] + r[7] * c[2];
      reach = Math.max(reach, Math.abs(x) * kx, Math.abs(y) * ky);
    }
    return 0.9 / (reach || frame.radius);
  }

  /* -- one canvas, one GL context -------------------------------------------------- */

  class Renderer {
    constructor(canvas) {
      const gl = canvas.getContext("webgl", { antialias: true, preserveDrawingBuffer: true, stencil: true });
      if (!gl) throw new Error("Your browser cannot show 3D here (WebGL is off or unsupported).");
      const program = gl.createProgram();
      for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX_SHADER], [gl.FRAGMENT_SHADER, FRAGMENT_SHADER]]) {
        const shader = gl.createShader(type);
        gl.shaderSource(shader, source);
        gl.compileShader(shader);
        gl.attachShader(program, shader);
      }
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error("The 3D view could not start.");
      this.gl = gl;
      this.canvas = canvas;
      this.program = program;
      this.buffers = new Map(); // mesh → its GL buffers
      this.loc = {};
      for (const name of ["aPos", "aNormal"]) this.loc[name] = gl.getAttribLocation(program, name);
      for (const name of ["uRot", "uCentre", "uScale", "uColour", "uAlpha", "uFlat"]) {
        this.loc[name] = gl.getUniformLocation(program, name);
      }
    }

    // Match the drawing buffer to the canvas's size on screen; returns that size.
    resize() {
      const canvas = this.canvas, ratio = Math.min(window.devicePixelRatio || 1, 2);
      const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
      const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
      if (canvas.width !== w || canvas.height !== h) Object.assign(canvas, { width: w, height: h });
      return { w, h };
    }

    upload(mesh) {
      const gl = this.gl;
      if (mesh.lines && !this.buffers.has(mesh)) {
        const made = { position: gl.createBuffer() };
        gl.bindBuffer(gl.ARRAY_BUFFER, made.position);
        gl.bufferData(gl.ARRAY_BUFFER, mesh.lines, gl.STATIC_DRAW);
        this.buffers.set(mesh, made);
      }
      if (!this.buffers.has(mesh)) {
        const made = { position: gl.createBuffer(), normal: gl.createBuffer() };
        gl.bindBuffer(gl.ARRAY_BUFFER, made.position);
        gl.bufferData(gl.ARRAY_BUFFER, mesh.positions, gl.STATIC_DRAW);
        gl.bindBuffer(gl.ARRAY_BUFFER, made.normal);
        gl.bufferData(gl.ARRAY_BUFFER, mesh.normals, gl.STATIC_DRAW);
        this.buffers.set(mesh, made);
      }
      return this.buffers.get(mesh);
    }

    // items: [{mesh, colour, alpha, first?, count?}] (a run of the mesh's triangles, or all
    // of them), opaque ones first, then [{mesh: {lines}, colour}] drawn as lines over the
    // surfaces; rot: mat3; scale: clip units per mm.
    // inside: {old, now}, the overlay's two meshes: the old one's parts inside the new one
    // are drawn through it.
    draw(items, frame, rot, scale, inside = null) {
      const { gl, loc } = this, w = this.canvas.width, h = this.canvas.height;
      gl.viewport(0, 0, w, h);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT | gl.STENCIL_BUFFER_BIT);
      gl.disable(gl.STENCIL_TEST);
      gl.depthFunc(gl.LESS);
      gl.enable(gl.DEPTH_TEST);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.useProgram(this.program);
      gl.uniformMatrix3fv(loc.uRot, false, rot);
      gl.uniform3fv(loc.uCentre, frame.centre);
      gl.uniform3f(loc.uScale, scale * Math.min(1, h / w), scale * Math.min(1, w / h), -1 / (frame.radius * 1.01));
      if (inside) this.markInside(inside);
      const lines = items.some((item) => item.mesh.lines);
      gl.uniform1f(loc.uFlat, 0);
      for (const item of items) {
        if (item.mesh.lines) continue;
        const opaque = item.alpha >= 1;
        gl.depthMask(opaque); // a translucent surface must not hide what lies behind it
        // Only the outside of a translucent one (inner walls seen through it are noise),
        // pushed back a little so that where both versions agree the opaque one shows.
        for (const flag of [gl.CULL_FACE, gl.POLYGON_OFFSET_FILL]) {
          if (opaque) gl.disable(flag);
          else gl.enable(flag);
        }
        // Lines on a surface: the surface steps back so that its edges win the depth test.
        if (opaque && lines) gl.enable(gl.POLYGON_OFFSET_FILL);
        gl.polygonOffset(1, 4);
        this.surface(item);
      }
      gl.depthMask(true);
      gl.disable(gl.POLYGON_OFFSET_FILL);
      gl.disable(gl.CULL_FACE);
      if (inside) this.drawInside(inside);
      for (const item of items) {
        if (!item.mesh.lines) continue;
        gl.uniform1f(loc.uFlat, 1);
        gl.uniform3fv(loc.uColour, item.colour);
        gl.uniform1f(loc.uAlpha, 1);
        gl.bindBuffer(gl.ARRAY_BUFFER, this.upload(item.mesh).position);
        gl.enableVertexAttribArray(loc.aPos);
        gl.vertexAttribPointer(loc.aPos, 3, gl.FLOAT, false, 0, 0);
        gl.disableVertexAttribArray(loc.aNormal);
        gl.vertexAttrib3f(loc.aNormal, 0, 0, 1);
        gl.drawArrays(gl.LINES, 0, item.mesh.lines.length / 3);
      }
    }
  }

  Object.assign(Renderer.prototype, {
    // Triangles of one item (a run of them, or all) in its colour.
    surface(item) {
      const { gl, loc } = this, buffers = this.upload(item.mesh);
      gl.uniform3fv(loc.uColour, item.colour);
      gl.uniform1f(loc.uAlpha, item.alpha);
      for (const [attribute, buffer] of [[loc.aPos, buffers.position], [loc.aNormal, buffers.normal]]) {
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.enableVertexAttribArray(attribute);
        gl.vertexAttribPointer(attribute, 3, gl.FLOAT, false, 0, 0);
      }
      const first = item.first || 0, count = item.count ?? item.mesh.positions.length / 9;
      gl.drawArrays(gl.TRIANGLES, first * 3, count * 3);
    },

    // Stencil bit 1 where the old part's nearest surface lies inside the new part: an odd
    // number of the new part's surfaces in front of it (a closed new part; the camera
    // outside it). The new part is pushed back a little so that where both surfaces agree
    // it does not count: an unchanged part shows no x-ray. Leaves colour untouched and the
    // depth buffer cleared.
    markInside({ old, now }) {
      const gl = this.gl;
      gl.colorMask(false, false, false, false);
      gl.disable(gl.CULL_FACE);
      gl.depthMask(true);
      this.surface({ mesh: old, colour: COLOURS.old, alpha: 1 });
      gl.depthMask(false);
      gl.enable(gl.STENCIL_TEST);
      gl.stencilFunc(gl.ALWAYS, 0, 1);
      gl.stencilOp(gl.KEEP, gl.KEEP, gl.INVERT);
      gl.stencilMask(1);
      gl.enable(gl.POLYGON_OFFSET_FILL);
      gl.polygonOffset(2, 8);
      this.surface({ mesh: now, colour: COLOURS.new, alpha: 1 });
      gl.disable(gl.POLYGON_OFFSET_FILL);
      gl.disable(gl.STENCIL_TEST);
      gl.colorMask(true, true, true, true);
      gl.depthMask(true);
      gl.clear(gl.DEPTH_BUFFER_BIT);
    },

    // Over the finished overlay, where the stencil marks it: the old part's nearest surface
    // only (its depth first, then its colour where the depth is equal), so layers behind it
    // do not pile up.
    drawInside({ old }) {
      const gl = this.gl;
      gl.enable(gl.STENCIL_TEST);
      gl.stencilFunc(gl.EQUAL, 1, 1);
      gl.stencilOp(gl.KEEP, gl.KEEP, gl.KEEP);
      gl.disable(gl.CULL_FACE);
      gl.clear(gl.DEPTH_BUFFER_BIT);
      gl.colorMask(false, false, false, false);
      this.surface({ mesh: old, colour: COLOURS.old, alpha: 1 });
      gl.colorMask(true, true, true, true);
      gl.depthMask(false);
      gl.depthFunc(gl.LEQUAL);
      gl.uniform1f(this.loc.uFlat, 0);
      this.surface({ mesh: old, colour: COLOURS.old, alpha: INSIDE_ALPHA });
      gl.depthFunc(gl.LESS);
      gl.depthMask(true);
      gl.disable(gl.STENCIL_TEST);
    },

    // Give back the GL context (a side-by-side view closed): browsers keep only a few.
    release() {
      const lose = this.gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    },
  });

  /* -- the widget -------------------------------------------------------------------- */

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  class Viewer {
    constructor(root) {
      this.root = root;
      this.stage = root.querySelector(".mv-stage");
      this.message = root.querySelector(".mv-message");
      this.canvases = [root.querySelector("canvas")];
      this.urls = Object.entries({ old: root.dataset.old, new: root.dataset.new }).filter(([, url]) => url);
      this.sceneUrl = root.dataset.scene || null;
      this.extraUrl = this.urls.length === 1 ? root.dataset.extra || null : null;
      this.showEdges = true;
      this.compare = this.urls.length === 2;
      this.transform = root.dataset.oldTransform ? JSON.parse(root.dataset.oldTransform) : null;
      this.aligned = Boolean(this.transform); // show the old part moved onto the new one
      this.cam = { ...HOME };
      this.show = "both"; // in an overlay: "old", "new" or "both"
      this.side = false; // side by side instead of an overlay
      this.meshes = {};
    }

    say(text, state) {
      this.root.dataset.state = state;
      this.message.textContent = text;
      this.message.hidden = !text;
    }

    async start() {
      this.say("Loading 3D view…", "loading");
      try {
        this.renderers = [new Renderer(this.canvases[0])];
        if (this.sceneUrl) await this.loadScene();
        const loaded = await Promise.all(this.urls.map(([, url]) => loadMesh(url)));
        this.urls.forEach(([name], i) => { this.meshes[name] = loaded[i]; });
        if (this.extraUrl) this.extra = await loadExtra(this.extraUrl, loaded[0].positions.length / 9);
      } catch (error) {
        this.say(error.message, "error");
        return;
      }
      if (this.transform && this.meshes.old) this.meshes.oldAligned = moved(this.meshes.old, this.transform);
      this.buildToolbar();
      this.bindInput(this.canvases[0]);
      if (this.compare) Object.assign(this.root.dataset, { layout: "overlay", canvases: "1" });
      this.root.classList.add("live");
      this.say("", "ready");
      this.started = true;
      this.render();
      new ResizeObserver(() => this.render()).observe(this.stage);
    }

    // An assembly: every part loaded once per file, placed by its matrix, coloured by module.
    async loadScene() {
      const response = await fetch(this.sceneUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`Could not load the assembly (HTTP ${response.status}).`);
      const parts = (await response.json()).parts.slice(0, MAX_SCENE_PARTS);
      const files = new Map();
      for (const part of parts) if (!files.has(part.url)) files.set(part.url, loadMesh(part.url).catch(() => null));
      const modules = [...new Set(parts.map((part) => part.module))];
      const items = [];
      for (const part of parts) {
        const mesh = await files.get(part.url);
        if (!mesh) continue;
        const m = part.matrix;
        const placement = { rotation: [[m[0], m[4], m[8]], [m[1], m[5], m[9]], [m[2], m[6], m[10]]], shift: [m[12], m[13], m[14]] };
        const colour = PALETTE[modules.indexOf(part.module) % PALETTE.length];
        items.push({ mesh: moved(mesh, placement), colour, alpha: 1 });
      }
      if (!items.length) throw new Error("No module of this assembly has 3D data yet.");
      this.sceneItems = items;
      this.root.dataset.parts = String(items.length);
    }

    // What each canvas draws, as {items, frame}: opaque surfaces first, the translucent
    // old one last. An overlay keeps both versions where their files put them, so a part
    // that moved shows as moved; side by side, each is centred on its own.
    layers() {
      if (this.sceneItems) return [{ items: this.sceneItems, frame: union(this.sceneItems.map((item) => item.mesh.frame)) }];
      const now = this.meshes.new, old = (this.aligned && this.meshes.oldAligned) || this.meshes.old;
      const frame = union([now, old].filter(Boolean).map((m) => m.frame));
      const oldOpaque = { mesh: old, colour: COLOURS.old, alpha: 1 };
      const newOpaque = { mesh: now, colour: this.compare ? COLOURS.new : COLOURS.single, alpha: 1 };
      if (!this.compare && this.extra) return [{ items: this.partItems(now || old), frame }];
      if (!this.compare) return [{ items: [now ? newOpaque : oldOpaque], frame }];
      if (this.side) return [{ items: [oldOpaque], frame: old.frame }, { items: [newOpaque], frame: now.frame }];
      if (this.show === "old") return [{ items: [oldOpaque], frame }];
      if (this.show === "new") return [{ items: [newOpaque], frame }];
      return [{ items: [newOpaque, { mesh: old, colour: COLOURS.old, alpha: OLD_ALPHA }], frame, inside: { old, now } }];
    }

    // One version in the colours of its bodies or objects, its open edges over it.
    partItems(mesh) {
      const { runs, coloured, edges } = this.extra;
      const items = runs.map((run) => ({
        mesh, first: run.first, count: run.count, alpha: 1,
        colour: coloured ? run.colour : COLOURS.single,
      }));
      if (edges.length && this.showEdges) {
        this.edgeMesh = this.edgeMesh || { lines: edges };
        items.push({ mesh: this.edgeMesh, colour: OPEN_EDGE_COLOUR });
      }
      return items;
    }

    // Draw on the next animation frame; side by side, both views share one scale.
    render() {
      if (this.pending || !this.started) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        const layers = this.layers(), rot = rotation(this.cam.az, this.cam.el);
        const fits = layers.map((layer, i) => fitScale(layer.frame, this.renderers[i].resize()));
        const scale = Math.min(...fits) * this.cam.zoom;
        layers.forEach((layer, i) => this.renderers[i].draw(layer.items, layer.frame, rot, scale, layer.inside));
      });
    }

    buildToolbar() {
      const bar = el("div", "mv-toolbar");
      const reset = el("button", "button small", "Reset view");
      reset.type = "button";
      reset.addEventListener("click", () => { this.cam = { ...HOME }; this.render(); });
      bar.append(reset);
      if (this.compare) {
        const shows = this.toggles(bar, "Show", [["old", "Old"], ["new", "New"], ["both", "Both"]], this.show, (value) => {
          this.show = value;
          this.render();
        });
        this.toggles(bar, "Layout", [["overlay", "Overlay"], ["side", "Side by side"]], "overlay", (value) => {
          this.setSide(value === "side");
          shows.hidden = this.side;
        });
        if (this.transform) {
          this.toggles(bar, "Placement of the old part", [["aligned", "Aligned"], ["placed", "As placed"]], "aligned",
            (value) => { this.aligned = value === "aligned"; this.render(); });
        }
        const legend = el("span", "mv-legend");
        legend.append(el("span", "mv-swatch old", "old"), el("span", "mv-swatch new", "new"));
        bar.append(legend);
      }
      if (this.extra && this.extra.edges.length) {
        const { edges, edgeTotal } = this.extra, shown = edges.length / 6;
        this.toggles(bar, "Open edges", [["show", "Show holes"], ["hide", "Hide holes"]], "show", (value) => {
          this.showEdges = value === "show";
          this.render();
        });
        const what = shown < edgeTotal ? `${shown.toLocaleString()} of ${edgeTotal.toLocaleString()}` : edgeTotal.toLocaleString();
        bar.append(el("span", "mv-legend mv-open-edges", `${what} open edges (holes) in red`));
      }
      bar.append(el("span", "mv-hint", "Drag to turn · wheel or pinch to zoom"));
      this.root.insertBefore(bar, this.stage);
    }

    // A group of buttons of which one is pressed; returns the group.
    toggles(bar, label, options, current, onChange) {
      const group = el("span", "mv-segmented");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", label);
      for (const [value, text] of options) {
        const button = el("button", "button small", text);
        button.type = "button";
        button.setAttribute("aria-pressed", String(value === current));
        button.addEventListener("click", () => {
          for (const other of group.children) other.setAttribute("aria-pressed", String(other === button));
          onChange(value);
        });
        group.append(button);
      }
      bar.append(group);
      return group;
    }

    // Each layout builds its own canvases and clears what the other one drew: leaving
    // side by side removes the second canvas and its captions (and frees its context).
    setSide(side) {
      this.side = side;
      this.stage.classList.toggle("side", side);
      this.root.dataset.layout = side ? "side" : "overlay";
      if (!side) {
        for (const extra of this.canvases.splice(1)) extra.remove();
        for (const renderer of this.renderers.splice(1)) renderer.release();
        this.stage.querySelectorAll(".mv-caption").forEach((caption) => caption.remove());
      }
      if (side && this.canvases.length === 1) {
        const second = el("canvas");
        second.setAttribute("role", "img");
        second.setAttribute("aria-label", "The new version");
        this.stage.append(second, el("span", "mv-caption left", "Old"), el("span", "mv-caption right", "New"));
        this.canvases.push(second);
        try {
          this.renderers.push(new Renderer(second));
        } catch (error) {
          this.say(error.message, "error");
          return;
        }
        this.bindInput(second);
      }
      this.root.dataset.canvases = String(this.canvases.length);
      this.render();
    }

    // Orbit with one pointer (mouse or finger), zoom with the wheel or two fingers.
    bindInput(canvas) {
      const pointers = new Map();
      let pinch = 0;
      const spread = () => {
        const [a, b] = pointers.values();
        return Math.hypot(a.x - b.x, a.y - b.y);
      };
      canvas.addEventListener("pointerdown", (e) => {
        canvas.setPointerCapture(e.pointerId);
        pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (pointers.size === 2) pinch = spread();
      });
      canvas.addEventListener("pointermove", (e) => {
        const last = pointers.get(e.pointerId);
        if (!last) return;
        if (pointers.size === 1) {
          this.cam.az += (e.clientX - last.x) * 0.01;
          this.cam.el = Math.max(-1.57, Math.min(1.57, this.cam.el + (e.clientY - last.y) * 0.01));
        }
        pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (pointers.size === 2) {
          const now = spread();
          if (pinch) this.zoomBy(now / pinch);
          pinch = now;
        }
        this.render();
      });
      const release = (e) => { pointers.delete(e.pointerId); pinch = 0; };
      canvas.addEventListener("pointerup", release);
      canvas.addEventListener("pointercancel", release);
      canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.zoomBy(Math.exp(-e.deltaY * 0.0015));
        this.render();
      }, { passive: false });
      canvas.addEventListener("webglcontextlost", () => {
        if (!canvas.isConnected) return; // a side-by-side canvas closed on purpose
        this.root.classList.remove("live");
        this.say("The browser paused this 3D view (too many open at once). Reload to see it again.", "error");
      });
    }

    zoomBy(factor) {
      this.cam.zoom = Math.max(0.2, Math.min(50, this.cam.zoom * factor));
    }
  }

  /* -- start-up ------------------------------------------------------------------------ */

  // Start a view when it scrolls near the screen: a long diff may hold many.
  function startWhenVisible(viewer) {
    const watch = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        watch.disconnect();
        viewer.start();
      }
    }, { rootMargin: "200px" });
    watch.observe(viewer.root);
  }

  // `scope`: the page, or a part of it filled in later (a diff page's hub/diffs.js).
  function init(scope = document) {
    scope.querySelectorAll("[data-mesh-viewer]:not([data-viewer-bound])").forEach((root, index) => {
      root.setAttribute("data-viewer-bound", "");
      const viewer = new Viewer(root);
      if (index < AUTO_START) return startWhenVisible(viewer);
      const button = el("button", "button", "Show in 3D");
      button.type = "button";
      button.addEventListener("click", () => viewer.start());
      viewer.message.replaceChildren(button);
      viewer.message.hidden = false;
    });
  }

  window.fabhubMeshViewers = init;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => init());
  else init();
})();
