/* plyctl: the toolbox. */
#include <stdio.h>
#include "ply.h"
int main(void) { return 0; }
