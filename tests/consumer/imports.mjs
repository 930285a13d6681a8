// Imports every package named in FARSKIP_PACKAGES from its ESM build; prints how many exports each has.
const names = (process.env.FARSKIP_PACKAGES ?? '').split(',').filter(Boolean);
const loaded = {};
for (const name of names) loaded[name] = Object.keys(await import(name)).length;
console.log(JSON.stringify({ format: 'esm', loaded }));
