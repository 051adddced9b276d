import { readFileSync, writeFileSync } from 'node:fs';

// Two of esbuild's helpers, made to leave less on every app's heap (same behaviour):
// - `__toCommonJS`, used where a CommonJS module requires a bundled ES module (the OpenTelemetry API
//   and core are bundled as ES modules, and the CommonJS instrumentations, exporters and SDK
//   require them), made a new object with a getter closure per export at every require: 35 copies
//   of the API's exports in a traced process, about 140 kB. It now gives each module one view, as
//   Node's own require() gives one exports object (the view's getters read the module's live
//   bindings, so every caller sees the same values).
// - `__name` (keepNames) redefined `name` on every function it names, which turns the function's
//   properties into a dictionary (256 bytes each, 275 functions at start): it now leaves a function
//   whose name is already the one to keep as it is.
// `required` lists the helpers a bundle must contain, so an esbuild that writes them differently stops the build.
export const leanHelpers = [
  ['__toCommonJS=mod=>__copyProps(__defProp({},"__esModule",{value:!0}),mod);', '__toCommonJS=(views=>mod=>{let view=views.get(mod);return view===void 0&&views.set(mod,view=__copyProps(__defProp({},"__esModule",{value:!0}),mod)),view})(new WeakMap);'],
  ['__name=(target,value)=>__defProp(target,"name",{value,configurable:!0});', '__name=(target,value)=>target.name===value?target:__defProp(target,"name",{value,configurable:!0});'],
];
export function withLeanHelpers(file, required) {
  let text = readFileSync(file, 'utf8');
  for (const [helper, lean] of leanHelpers) {
    const count = text.split(helper).length - 1;
    if (count > 1 || (count === 0 && required.some((name) => helper.startsWith(name)))) {
      throw new Error(`${file}: esbuild's ${helper.slice(0, helper.indexOf('='))} helper found ${count} times; see leanHelpers in injector/build.mjs`);
    }
    text = text.replace(helper, lean);
  }
  writeFileSync(file, text);
}
