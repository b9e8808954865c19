/* The release every program reports (--version, otp_build_info). A packager
 * may set it: make CFLAGS+='-DOTP_VERSION=\"1.2.3\"'. */
#ifndef OTP_VERSION_H
#define OTP_VERSION_H

#ifndef OTP_VERSION
#define OTP_VERSION "0.1.0"
#endif

#endif
