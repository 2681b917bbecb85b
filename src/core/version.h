/* The version every program prints for --version. */
#ifndef FIBD_CORE_VERSION_H
#define FIBD_CORE_VERSION_H
#define FIBD_VERSION "0.1.0"
#endif
