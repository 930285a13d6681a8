// The same program from the packages' CommonJS builds (`require`), as a CommonJS consumer loads them.
'use strict';
const run = require('./tensor-kernels-program.cjs');

run(require('@farskip/tensor'), require('@farskip/kernels')).then((out) => {
  console.log(JSON.stringify({ format: 'cjs', ...out }));
});
