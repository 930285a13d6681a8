// Requires every package named in FARSKIP_PACKAGES from its CommonJS build; prints how many exports each has.
'use strict';
const names = (process.env.FARSKIP_PACKAGES ?? '').split(',').filter(Boolean);
const loaded = {};
for (const name of names) loaded[name] = Object.keys(require(name)).filter((k) => k !== '__esModule').length;
console.log(JSON.stringify({ format: 'cjs', loaded }));
